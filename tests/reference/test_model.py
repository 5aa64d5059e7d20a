"""model.py: causality, per-token losses, and the two attention paths."""
import pytest
import torch

from model import GPT, GPTConfig


def tiny_model(attention="sdpa", seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=32, attention=attention))


def random_batch(batch=3, time=16, vocab=50, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randint(vocab, (batch, time), generator=generator),
            torch.randint(vocab, (batch, time), generator=generator))


@pytest.mark.parametrize("attention", ["sdpa", "explicit"])
def test_a_future_token_cannot_change_earlier_logits(attention):
    model = tiny_model(attention)
    x, _ = random_batch()
    changed = x.clone()
    changed[:, 10] = (changed[:, 10] + 1) % 50
    logits, _ = model(x)
    logits_changed, _ = model(changed)
    assert torch.equal(logits[:, :10], logits_changed[:, :10])
    assert not torch.allclose(logits[:, 10:], logits_changed[:, 10:])  # the change does reach later positions


def test_per_token_losses_average_to_the_mean_loss():
    model = tiny_model()
    x, y = random_batch()
    _, mean_loss = model(x, y)
    _, token_losses = model(x, y, per_token=True)
    assert token_losses.shape == (3, 16)
    torch.testing.assert_close(token_losses.mean(), mean_loss)


def test_per_token_losses_match_a_naive_loop():
    model = tiny_model()
    x, y = random_batch()
    logits, token_losses = model(x, y, per_token=True)
    for b in range(3):
        for t in range(16):
            expected = -torch.log_softmax(logits[b, t], dim=-1)[y[b, t]]
            torch.testing.assert_close(token_losses[b, t], expected, rtol=1e-5, atol=1e-6)


def test_both_attention_paths_give_the_same_losses_and_gradients():
    x, y = random_batch()
    sdpa, explicit = tiny_model("sdpa"), tiny_model("explicit")
    _, loss_sdpa = sdpa(x, y, per_token=True)
    _, loss_explicit = explicit(x, y, per_token=True)
    torch.testing.assert_close(loss_sdpa, loss_explicit, rtol=1e-5, atol=1e-6)
    loss_sdpa.mean().backward()
    loss_explicit.mean().backward()
    for (name, p), q in zip(sdpa.named_parameters(), explicit.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_set_attention_switches_every_layer_and_rejects_unknown_paths():
    model = tiny_model("sdpa")
    model.set_attention("explicit")
    assert all(block.attn.attention == "explicit" for block in model.blocks)
    with pytest.raises(ValueError):
        model.set_attention("flash")


def test_explicit_path_works_under_vmap():
    model = tiny_model("explicit")
    x, y = random_batch(batch=1)
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss_of_one_token(params, one_hot):  # picks loss[0, t] where one_hot[t] = 1
        _, losses = torch.func.functional_call(model, params, (x, y), {"per_token": True})
        return (losses[0] * one_hot).sum()

    grads = torch.func.vmap(torch.func.grad(loss_of_one_token), in_dims=(None, 0))(params, torch.eye(16)[:4])
    _, losses = model(x, y, per_token=True)
    losses[0, 3].backward()
    torch.testing.assert_close(grads["blocks.0.attn.qkv.weight"][3], model.blocks[0].attn.qkv.weight.grad)


def test_embeddings_are_tied_and_too_long_input_is_rejected():
    model = tiny_model()
    assert model.lm_head.weight is model.wte.weight
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 17, dtype=torch.long))
