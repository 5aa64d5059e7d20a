"""Tests for zsl.py: the interference metric, exact per-token gradients, the update link, the CLI."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

import zsl
from support import zsl_cli
from support import runfiles
from model import GPT, GPTConfig

ZSL = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "zsl.py")
TINY = dict(vocab_size=32, block_size=8, n_layer=2, n_head=2, n_embd=16)


def tiny_model(seed=0, **overrides):
    torch.manual_seed(seed)
    model = GPT(GPTConfig(**{**TINY, **overrides})).eval()
    with torch.no_grad():  # move away from the symmetric init so every gradient is non-trivial
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def tokens(B, T, vocab=TINY["vocab_size"], seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (B, T), generator=g), torch.randint(0, vocab, (B, T), generator=g)


# --- interference ------------------------------------------------------------------------------

def test_interference_is_zero_when_all_changes_share_a_sign():
    for delta in ([0.1, 0.2, 0.3], [-1.0, -0.5, -2.0]):
        D, M, abs_dL = zsl.interference(np.array(delta))
        assert D == pytest.approx(0.0, abs=1e-12)
        assert M == pytest.approx(np.mean(np.abs(delta)))
        assert abs_dL == pytest.approx(abs(np.mean(delta)))


def test_interference_is_one_on_exact_cancellation():
    D, M, abs_dL = zsl.interference(np.array([[0.5, -0.5], [2.0, -2.0]]))
    assert D == pytest.approx(1.0)
    assert M == pytest.approx(1.25)
    assert abs_dL == pytest.approx(0.0)


def test_interference_in_unit_interval_and_consistent_on_random_input():
    rng = np.random.default_rng(0)
    for _ in range(50):
        delta = rng.normal(loc=rng.normal(), size=rng.integers(1, 200))
        D, M, abs_dL = zsl.interference(delta)
        assert 0.0 <= D <= 1.0
        assert abs_dL == pytest.approx(M * (1 - D))   # |ΔL| = M (1 − D)


# --- per-token gradients -----------------------------------------------------------------------

def assert_stats_close(fast, naive, rtol=1e-5):
    for key in ("sum_grad", "sum_abs_grad"):
        assert fast[key].keys() == naive[key].keys()
        for name in naive[key]:
            ref = naive[key][name]
            err = float((fast[key][name] - ref).norm() / ref.norm())
            assert err < rtol, f"{key}[{name}]: relative error {err:.2e}"


@pytest.mark.parametrize("n_layer", [1, 3])
def test_fast_per_token_grads_equal_the_naive_loop(n_layer):
    model = tiny_model(n_layer=n_layer)
    x, y = tokens(3, 8)
    delta = {n: 1e-3 * torch.randn_like(p) for n, p in model.named_parameters()}
    naive = zsl.naive_per_token_grad_stats(model, x, y, direction=delta)
    # small chunks so that the prefix chunking and the sequence chunking are both exercised
    fast = zsl.per_token_grad_stats(model, x, y, chunk=3, seq_chunk=2, direction=delta)
    assert fast["n_tokens"] == naive["n_tokens"] == 24
    assert_stats_close(fast, naive)
    assert torch.allclose(fast["predicted_change"], naive["predicted_change"], rtol=1e-4, atol=1e-7)
    # the summaries built from them agree too
    assert zsl.gradient_summary(fast)["D_grad"] == pytest.approx(zsl.gradient_summary(naive)["D_grad"], abs=1e-5)


def test_fast_per_token_grads_on_a_prefix_of_positions():
    model = tiny_model()
    x, y = tokens(2, 8)
    naive = zsl.naive_per_token_grad_stats(model, x, y, n_positions=5)
    fast = zsl.per_token_grad_stats(model, x, y, chunk=2, n_positions=5)
    assert fast["n_tokens"] == naive["n_tokens"] == 10
    assert_stats_close(fast, naive)


def test_per_token_grads_sum_to_the_batch_gradient():
    model = tiny_model()
    x, y = tokens(4, 8)
    stats = zsl.per_token_grad_stats(model, x, y, chunk=4)
    _, losses = model(x, y, per_token=True)
    batch_grads = torch.autograd.grad(losses.sum(), list(model.parameters()))
    for (name, _), g in zip(model.named_parameters(), batch_grads):
        err = float((stats["sum_grad"][name] - g).norm() / g.norm())
        assert err < 1e-5, f"{name}: {err:.2e}"
        assert bool((stats["sum_abs_grad"][name] >= stats["sum_grad"][name].abs() - 1e-6).all())


def test_first_order_prediction_matches_measured_change_for_a_tiny_step():
    model = tiny_model().double()
    x, y = tokens(3, 8)
    torch.manual_seed(3)
    delta = {n: 1e-4 * torch.randn_like(p) for n, p in model.named_parameters()}
    stats = zsl.per_token_grad_stats(model, x, y, direction=delta)
    measured = zsl.probe_losses(model, x, y, delta) - zsl.probe_losses(model, x, y)
    predicted = stats["predicted_change"]
    small_error = float((predicted - measured).norm() / measured.norm())
    assert small_error < 5e-3
    # the error is second order: ten times the step, about a hundred times the error (relative: ten)
    big = {n: 10 * d for n, d in delta.items()}
    measured_big = zsl.probe_losses(model, x, y, big) - zsl.probe_losses(model, x, y)
    big_error = float((10 * predicted - measured_big).norm() / measured_big.norm())
    assert 3 * small_error < big_error < 5e-2


def test_gradient_summary_by_hand():
    # two non-embedding tensors: a: C = [1, 0, 0.5]; b: one element with no gradient at all
    stats = {
        "sum_grad": {"a": torch.tensor([2.0, 0.0, -1.0]), "b": torch.tensor([0.0, 3.0]),
                     "wte.weight": torch.tensor([1.0])},
        "sum_abs_grad": {"a": torch.tensor([2.0, 4.0, 2.0]), "b": torch.tensor([0.0, 3.0]),
                         "wte.weight": torch.tensor([5.0])},
        "n_tokens": 7,
    }
    s = zsl.gradient_summary(stats)
    assert s["n_elements"] == 4 and s["n_zero"] == 1                # 0/0 left out, counted
    stats["sum_abs_grad"]["b"][0] = 1e-9                          # rounding noise counts as zero
    assert zsl.gradient_summary(stats)["n_zero"] == 1
    assert s["D_grad"] == pytest.approx(np.mean([0.0, 1.0, 0.5, 0.0]))
    assert s["D_grad_global"] == pytest.approx(1 - (2 + 0 + 1 + 3) / (2 + 4 + 2 + 3))  # embeddings excluded
    assert sum(s["hist_counts"]) == 4 and s["hist_counts"][-1] == 2  # C = 1 twice, in the last bin
    wte = next(r for r in s["per_tensor"] if r["name"] == "wte.weight")
    assert wte["embedding"] and wte["D_mean"] == pytest.approx(0.8)


# --- a tiny run directory in train.py's layout ---------------------------------------------------

def make_run_dir(path, n_steps=8, record_steps=(1, 2, 3, 4, 6, 8), ckpt_steps=(1, 2, 4, 8)):
    """A few AdamW steps of a tiny model, written exactly as train.py writes a run directory."""
    os.makedirs(os.path.join(path, "records"))
    os.makedirs(os.path.join(path, "checkpoints"))
    train = dict(learning_rate=3e-3, weight_decay=0.1, beta1=0.9, beta2=0.95, adam_eps=1e-5,
                 batch_size=4, block_size=TINY["block_size"], max_iters=n_steps)
    model_config = {**GPTConfig(**TINY).__dict__}
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump({"train": train, "model": model_config, "data": {"vocab_size": TINY["vocab_size"]}}, f)
    probe_x, probe_y = tokens(3, 8, seed=10)
    update_x, update_y = tokens(4, 8, seed=11)
    np.savez(os.path.join(path, "probe.npz"), x=probe_x.numpy(), y=probe_y.numpy(),
             update_x=update_x.numpy(), update_y=update_y.numpy())
    model = tiny_model()
    optimizer = model.configure_optimizer(train["learning_rate"], train["weight_decay"],
                                          (train["beta1"], train["beta2"]), train["adam_eps"])
    per_token = lambda xx, yy: model(xx, yy, per_token=True)[1].detach().numpy()  # noqa: E731
    with open(os.path.join(path, "log.csv"), "w") as log:
        log.write("step,loss,lr,tokens,time_s\n")
        for step in range(1, n_steps + 1):
            x, y = tokens(4, 8, seed=100 + step)
            lr = train["learning_rate"] * min(1.0, step / 4)
            for group in optimizer.param_groups:
                group["lr"] = lr
            train_before, probe_before = per_token(x, y), per_token(probe_x, probe_y)
            _, loss = model(x, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            log.write(f"{step},{loss.item():.6f},{lr},{step * 32},{step * 0.01}\n")
            if step in record_steps:
                np.savez(os.path.join(path, "records", f"step_{step:06d}.npz"),
                         train_x=x.numpy(), train_y=y.numpy(), train_before=train_before,
                         train_after=per_token(x, y), probe_before=probe_before,
                         probe_after=per_token(probe_x, probe_y), step=np.array(step), lr=np.array(lr))
            if step in ckpt_steps:
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                            "lr": train["learning_rate"] * min(1.0, (step + 1) / 4),
                            "train_config": train, "model_config": model_config},
                           os.path.join(path, "checkpoints", f"step_{step:06d}.pt"))
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run_dir(str(tmp_path_factory.mktemp("zsl") / "run"))


def test_loss_interference_from_records(run_dir):
    rows = zsl.loss_interference(run_dir)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 6, 8]
    rec3, rec4 = (np.load(os.path.join(run_dir, "records", f"step_{s:06d}.npz")) for s in (3, 4))
    row3 = rows[2]
    assert row3["train"]["D"] == pytest.approx(zsl.interference(rec3["train_after"] - rec3["train_before"])[0])
    assert row3["probe"]["M"] == pytest.approx(np.abs(rec3["probe_after"] - rec3["probe_before"]).mean(), rel=1e-6)
    assert row3["interval"]["to_step"] == 4
    assert row3["interval"]["D"] == pytest.approx(zsl.interference(rec4["probe_before"] - rec3["probe_before"])[0])
    assert rows[-1]["interval"] is None
    # consecutive steps: probe after step 3 is probe before step 4
    assert row3["probe"]["D"] == pytest.approx(row3["interval"]["D"], abs=1e-5)


def test_update_link_from_a_checkpoint(run_dir):
    rows = zsl.gradient_interference(run_dir, steps=[4], probe_tokens=16)
    (row,) = rows
    assert row["step"] == 4 and row["n_tokens"] == 16          # two whole probe sequences
    assert 0 <= row["D_grad"] <= 1 and 0 <= row["update"]["C_g"] <= 1
    assert row["update"]["corr_predicted_measured"] > 0.9       # the first-order link holds
    # δ is the real AdamW step: applying the checkpoint's optimizer ourselves gives the same weights
    model, ckpt = runfiles.load_checkpoint(os.path.join(run_dir, "checkpoints", "step_000004.pt"))
    probe = runfiles.load_probe(run_dir)
    delta = zsl.adamw_update(model, ckpt, probe["update_x"], probe["update_y"])
    assert any(float(d.abs().max()) > 0 for d in delta.values())
    again = zsl.adamw_update(model, ckpt, probe["update_x"], probe["update_y"])
    assert all(torch.equal(delta[n], again[n]) for n in delta)  # deterministic, model untouched


# --- command line -------------------------------------------------------------------------------

def run_cli(*args):
    return subprocess.run([sys.executable, ZSL, *args, "--no_progress", "--threads", "1"],
                          capture_output=True, text=True, timeout=120)


def test_cli_writes_summary_and_figures_and_overlays_runs(run_dir, tmp_path):
    second = shutil.copytree(run_dir, tmp_path / "run2")
    fig_dir = tmp_path / "figs"
    result = run_cli(run_dir, str(second), "--json", "--fig_dir", str(fig_dir), "--max_checkpoints", "2")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert [os.path.basename(r["run_dir"]) for r in printed] == ["run", "run2"]
    rows = {r["step"]: r for r in printed[0]["steps"]}
    assert {"D_train", "M_train", "D_probe", "M_probe", "D_interval", "M_interval"} <= set(rows[3])
    assert "D_grad" in rows[8] and "D_grad" in rows[1] and "D_grad" not in rows[2]  # 2 spread checkpoints
    for d in (run_dir, str(second)):
        summary = json.load(open(os.path.join(d, "zsl.json")))
        assert len(summary["gradient_interference"]) == 2
        assert len(summary["gradient_interference"][0]["hist_counts"]) == 100
        for png in ("zsl_loss.png", "zsl_grad.png", "zsl_hist.png"):
            assert os.path.getsize(os.path.join(d, png)) > 1000
    for png in ("zsl_loss.png", "zsl_grad.png", "zsl_hist.png"):
        assert os.path.getsize(fig_dir / png) > 1000


def test_cli_records_only(run_dir, tmp_path):
    partial = shutil.copytree(run_dir, tmp_path / "partial")
    shutil.rmtree(partial / "checkpoints")                     # a run too young for a checkpoint
    os.remove(partial / "probe.npz")
    assert zsl_cli.main([str(partial), "--no_progress", "--no_grad"]) == 0
    summary = json.load(open(partial / "zsl.json"))
    assert summary["gradient_interference"] == [] and len(summary["loss_interference"]) == 6


def bad_run_dirs(run_dir, tmp_path):
    """name -> (run directory, extra args) that must fail with a one-line error."""
    cases = {"missing": (str(tmp_path / "nope"), [])}
    empty = tmp_path / "empty"
    empty.mkdir()
    cases["no config"] = (str(empty), [])
    garbage = shutil.copytree(run_dir, tmp_path / "garbage")
    (garbage / "config.json").write_text("{not json")
    cases["bad config"] = (str(garbage), [])
    young = tmp_path / "young"
    young.mkdir()
    shutil.copy(os.path.join(run_dir, "config.json"), young)
    cases["nothing yet"] = (str(young), [])
    corrupt = shutil.copytree(run_dir, tmp_path / "corrupt")
    (corrupt / "records" / "step_000003.npz").write_bytes(b"\x00" * 10)
    cases["corrupt record"] = (str(corrupt), ["--no_grad"])
    no_probe = shutil.copytree(run_dir, tmp_path / "no_probe")
    os.remove(no_probe / "probe.npz")
    cases["no probe"] = (str(no_probe), [])
    bad_ckpt = shutil.copytree(run_dir, tmp_path / "bad_ckpt")
    (bad_ckpt / "checkpoints" / "step_000002.pt").write_bytes(b"junk")
    cases["bad checkpoint"] = (str(bad_ckpt), ["--steps", "2"])
    cases["no such step"] = (run_dir, ["--steps", "5"])
    return cases


def test_bad_run_dirs_give_one_line_errors_in_process(run_dir, tmp_path, capsys):
    for name, (path, extra) in bad_run_dirs(run_dir, tmp_path).items():
        assert zsl_cli.main([path, "--no_progress", *extra]) == 2, name
        err = capsys.readouterr().err.strip()
        assert err.startswith("zsl.py: error: ") and "\n" not in err, (name, err)


@pytest.mark.parametrize("name", ["missing", "corrupt record", "bad checkpoint"])
def test_bad_run_dirs_give_one_line_errors_from_the_command_line(run_dir, tmp_path, name):
    path, extra = bad_run_dirs(run_dir, tmp_path)[name]
    result = run_cli(path, *extra)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zsl.py: error: "), result.stderr


def test_around_deceleration_and_headline_average_the_right_steps():
    summary = {"t_d": 100.0,
               "loss_interference": [{"step": s, "probe": {"D": d}} for s, d in
                                     [(10, 0.1), (50, 0.3), (60, 0.5), (199, 0.7), (200, 0.9), (400, 1.0)]],
               "gradient_interference": [{"step": 32, "D_grad": 0.8}, {"step": 64, "D_grad": 0.85},
                                         {"step": 256, "D_grad": 0.95}]}
    D_before, D_after, G_before, G_after = zsl.around_deceleration(summary, 100.0)
    assert D_before == pytest.approx(0.2) and D_after == pytest.approx(0.95)   # steps <= 50, >= 200
    assert G_before == pytest.approx(0.8) and G_after == pytest.approx(0.95)
    assert "0.20 before" in zsl.headline(summary) and "0.95 after" in zsl.headline(summary)
    assert "no t_d" in zsl.headline({**summary, "t_d": None})
