"""Tests for error_entropy.py: the decomposition against a slow reference and known answers, the CLI."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from experiments import error_entropy as ee
from support.cli import UsageError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def reference(logits, targets):
    """The definitions, one token at a time in plain Python (docs/science.md §8)."""
    logits = np.asarray(logits, dtype=np.float64).reshape(-1, np.shape(logits)[-1])
    targets = np.asarray(targets).reshape(-1)
    buckets = {}
    for row, y in zip(logits, targets):
        log_s = [v - math.log(sum(math.exp(w - max(row)) for w in row)) - max(row) for v in row]
        rank = sum(1 for v in log_s if v > log_s[y])              # strict
        buckets.setdefault(rank, []).append(log_s[y])
    n = len(targets)
    p = {e: len(values) / n for e, values in buckets.items()}
    log_Q = {e: sum(values) / len(values) for e, values in buckets.items()}
    C = sum(math.exp(v) for v in log_Q.values())
    EE = -sum(pe * math.log(pe) for pe in p.values())
    SA = sum(p[e] * math.log(p[e] / (math.exp(log_Q[e]) / C)) for e in p)
    CE = -sum(sum(values) for values in buckets.values()) / n
    return {"CE": CE, "EE": EE, "SA": SA, "log_C": math.log(C), "p": p, "log_Q": log_Q}


def identity_gap(result):
    return abs(result["CE"] - (result["EE"] + result["SA"] - result["log_C"]))


def test_matches_the_slow_reference_on_random_and_tied_logits():
    g = torch.Generator().manual_seed(0)
    random_logits = 3 * torch.randn(300, 11, generator=g)
    tied_logits = torch.randint(0, 3, (300, 11), generator=g).float()      # many exact ties
    targets = torch.randint(0, 11, (300,), generator=g)
    for logits in (random_logits, tied_logits):
        fast, slow = ee.decompose(logits, targets), reference(logits, targets)
        for key in ("CE", "EE", "SA", "log_C"):
            assert fast[key] == pytest.approx(slow[key], abs=1e-10), key
        for e, pe in slow["p"].items():
            assert fast["p"][e] == pytest.approx(pe) and fast["log_Q"][e] == pytest.approx(slow["log_Q"][e])
        assert fast["p"].sum() == pytest.approx(1.0)
        assert np.isnan(fast["log_Q"][fast["counts"] == 0]).all()


def test_ties_get_the_best_rank():
    logits = torch.tensor([[1.0, 1.0, 1.0, 0.0], [2.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]])
    targets = torch.tensor([2, 3, 3])      # tied for first; tied for second; tied for third
    result = ee.decompose(logits, targets)
    assert result["counts"].tolist() == [1, 1, 1, 0]


def test_identity_to_1e9_on_random_and_heavily_tied_logits():
    g = torch.Generator().manual_seed(1)
    for logits in (10 * torch.randn(4, 50, 256, generator=g),
                   torch.randint(-2, 2, (4, 50, 256), generator=g).float()):
        targets = torch.randint(0, 256, (4, 50), generator=g)
        assert identity_gap(ee.decompose(logits, targets)) < 1e-9


def test_uniform_logits():
    V = 256
    result = ee.decompose(torch.zeros(1000, V), torch.randint(0, V, (1000,)))
    assert result["EE"] == pytest.approx(0.0, abs=1e-12) and result["SA"] == pytest.approx(0.0, abs=1e-12)
    assert result["neg_log_C"] == pytest.approx(math.log(V), abs=1e-12)
    assert result["CE"] == pytest.approx(math.log(V), abs=1e-12)


def test_every_target_ranked_first_with_probability_s():
    V, a = 10, 2.0
    targets = torch.arange(200) % V
    logits = torch.zeros(200, V).scatter(1, targets[:, None], a)   # the target's logit a, the rest 0
    s = math.exp(a) / (math.exp(a) + V - 1)
    result = ee.decompose(logits, targets)
    assert result["p"][0] == 1.0
    assert result["EE"] == pytest.approx(0.0, abs=1e-12) and result["SA"] == pytest.approx(0.0, abs=1e-12)
    assert result["CE"] == pytest.approx(-math.log(s), abs=1e-12)
    assert result["neg_log_C"] == pytest.approx(-math.log(s), abs=1e-12)


def test_two_buckets():
    """Half the tokens rank 0 with probability a, half rank 1 with probability b."""
    a, b = 0.6, 0.3
    first = np.log([a, 0.2, 0.2])            # target 0 ranked first, s_y = a
    second = np.log([0.6, b, 0.1])           # target 1 ranked second, s_y = b
    logits = torch.tensor(np.array([first, second] * 50))
    targets = torch.tensor([0, 1] * 50)
    result = ee.decompose(logits, targets)
    assert result["EE"] == pytest.approx(math.log(2), abs=1e-12)
    assert result["log_C"] == pytest.approx(math.log(a + b), abs=1e-12)
    assert result["CE"] == pytest.approx(-0.5 * math.log(a * b), abs=1e-12)
    q = np.array([a, b]) / (a + b)            # SA = KL((1/2, 1/2) || q)
    assert result["SA"] == pytest.approx(float(np.sum(0.5 * np.log(0.5 / q))), abs=1e-12)


def test_error_entropy_is_unchanged_by_a_temperature_the_others_are_not():
    g = torch.Generator().manual_seed(2)
    logits, targets = torch.randn(2000, 64, generator=g), torch.randint(0, 64, (2000,), generator=g)
    base = ee.decompose(logits, targets)
    for temperature in (0.25, 3.0, 10.0):
        scaled = ee.decompose(logits / temperature, targets)
        assert scaled["EE"] == pytest.approx(base["EE"], abs=1e-12)
        assert (scaled["counts"] == base["counts"]).all()
        assert abs(scaled["CE"] - base["CE"]) > 1e-3               # ... while CE moves,
        assert abs(scaled["SA"] - scaled["log_C"] - base["SA"] + base["log_C"]) > 1e-3  # absorbed by SA - log C


def test_ce_equals_torch_cross_entropy():
    g = torch.Generator().manual_seed(3)
    logits, targets = 4 * torch.randn(3, 70, 256, generator=g), torch.randint(0, 256, (3, 70), generator=g)
    expected = F.cross_entropy(logits.double().reshape(-1, 256), targets.reshape(-1)).item()
    assert ee.decompose(logits, targets)["CE"] == pytest.approx(expected, abs=1e-12)


def test_streaming_in_batches_equals_one_pass():
    g = torch.Generator().manual_seed(4)
    logits, targets = torch.randn(1000, 40, generator=g), torch.randint(0, 40, (1000,), generator=g)
    whole = ee.decompose(logits, targets)
    buckets = ee.RankBuckets(40)
    losses, ranks = [], []
    for start in range(0, 1000, 137):   # uneven batches
        batch_losses, batch_ranks = buckets.add(logits[start:start + 137], targets[start:start + 137])
        losses.append(batch_losses)
        ranks.append(batch_ranks)
    streamed = buckets.result()
    for key in ("CE", "EE", "SA", "log_C"):
        assert streamed[key] == pytest.approx(whole[key], abs=1e-12)
    assert (streamed["counts"] == whole["counts"]).all()
    assert np.allclose(np.concatenate(losses), F.cross_entropy(logits, targets, reduction="none").numpy(), atol=1e-6)
    assert np.bincount(np.concatenate(ranks), minlength=40).tolist() == whole["counts"].tolist()


def test_bad_input_is_a_clear_error():
    with pytest.raises(UsageError, match="do not match"):
        ee.decompose(torch.randn(5, 7, 10), torch.zeros(5, 6, dtype=torch.long))
    with pytest.raises(UsageError, match="must lie in 0..9"):
        ee.decompose(torch.randn(5, 10), torch.tensor([0, 1, 2, 3, 10]))
    with pytest.raises(UsageError, match="integer"):
        ee.decompose(torch.randn(5, 10), torch.zeros(5))
    with pytest.raises(UsageError, match="nan or inf"):
        ee.decompose(torch.full((2, 4), float("nan")), torch.zeros(2, dtype=torch.long))


def test_loss_changes_by_rank_add_up():
    rng = np.random.default_rng(5)
    losses_a, losses_b = rng.exponential(size=500), rng.exponential(size=500)
    ranks_a, ranks_b = rng.integers(0, 40, 500), rng.integers(0, 40, 500)
    change = ee.loss_changes_by_rank(losses_a, ranks_a, losses_b, ranks_b)
    for split in ("by_rank", "by_move"):
        groups = change[split].values()
        assert sum(g["net"] for g in groups) == pytest.approx(change["dCE"])
        assert sum(g["abs"] for g in groups) == pytest.approx(change["M"])
        assert sum(g["share"] for g in groups) == pytest.approx(1.0)
    # the slow way, for one group: tokens whose rank stayed the same
    same = [b - a for a, b, ra, rb in zip(losses_a, losses_b, ranks_a, ranks_b) if ra == rb]
    assert change["by_move"]["unchanged"]["net"] == pytest.approx(sum(same) / 500)


def test_zero_sum_summary_splits_the_intervals_by_phase_and_applies_the_rule():
    def interval(start, end, unchanged_abs):   # 1 - unchanged_abs of sum |dl| in rank-improving tokens
        group = lambda a: {"share": 0.5, "net": -a / 10, "abs": a, "D": 0.9}
        return {"from_step": start, "to_step": end, "M": 1.0, "dCE": -0.1, "D": 0.9, "dEE": -0.05,
                "dSA": -0.03, "dneg_log_C": -0.02, "by_rank": {"0": group(1.0)},
                "by_move": {"unchanged": group(unchanged_abs), "improved": group(1 - unchanged_abs),
                            "worsened": group(0.0)}}
    intervals = [interval(1, 2, 0.5), interval(2, 4, 0.5), interval(40, 50, 0.9), interval(50, 60, 0.6)]
    summary = ee.zero_sum_summary(intervals, t_d=20)
    assert summary["before"]["intervals"] == 2 and summary["around"] is None and summary["after"]["intervals"] == 2
    assert summary["after"]["by_move:unchanged:abs_share"] == pytest.approx(0.75)
    assert summary["after"]["dEE_share"] == pytest.approx(0.5)
    assert summary["concentrated_in"] is None                   # 75 % is not more than 80 %
    intervals[-1] = interval(50, 60, 0.8)
    assert ee.zero_sum_summary(intervals, t_d=20)["concentrated_in"] == "unchanged"
    assert ee.zero_sum_summary(intervals, t_d=None) is None


def test_power_law_fit_recovers_exponent_and_r2():
    params = np.array([1e4, 1e5, 1e6, 1e7])
    fit = ee.power_law_fit(params, 5.0 * params ** -0.1)
    assert fit["alpha"] == pytest.approx(0.1) and fit["a"] == pytest.approx(5.0) and fit["r2"] == pytest.approx(1.0)
    noisy = ee.power_law_fit(params, 5.0 * params ** -0.1 * np.array([1.2, 0.8, 1.25, 0.85]))
    assert noisy["r2"] < 0.9
    assert "error" in ee.power_law_fit(params, np.array([1.0, -0.5, 0.3, 0.2]))
    assert "error" in ee.power_law_fit(params[:2], np.array([1.0, 0.9]))


# --- a real run, end to end ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A 30-step run of a tiny model on a small byte dataset (a few seconds)."""
    root = tmp_path_factory.mktemp("ee")
    text = root / "text.txt"
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "error", "entropy", "rank", "token"]
    text.write_text(" ".join(rng.choice(words, 20_000)))
    from data import prepare
    prepare.build_from_file(str(text), str(root / "data"), level="char")
    run = root / "run"
    result = subprocess.run([sys.executable, "train.py", f"--out_dir={run}", f"--dataset={root / 'data'}",
                             "--n_layer=1", "--n_embd=16", "--n_head=2", "--block_size=16", "--batch_size=8",
                             "--max_iters=30", "--warmup_iters=5", "--record_per_octave=0", "--progress=false"],
                            cwd=ROOT, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    return run


def run_cli(*args):
    return subprocess.run([sys.executable, "experiments/error_entropy.py", *args, "--no_progress"], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_cli_on_a_run_writes_the_decomposition_of_every_checkpoint(tiny_run):
    result = run_cli(str(tiny_run), "--tokens=2048", "--context=16")
    assert result.returncode == 0, result.stderr
    with open(tiny_run / "error_entropy.json") as f:
        summary = json.load(f)
    steps = [c["step"] for c in summary["checkpoints"]]
    assert steps == [1, 2, 4, 8, 16, 30]
    assert summary["eval_set"]["n_tokens"] == 2048
    assert len(summary["intervals"]) == len(steps) - 1
    for c in summary["checkpoints"]:
        assert abs(c["CE"] - (c["EE"] + c["SA"] - c["log_C"])) < 1e-9
    # the last checkpoint's CE is the model's own loss on the same windows
    model, _ = ee.runfiles.load_checkpoint(ee.runfiles.checkpoint_paths(str(tiny_run))[-1])
    x, y, _ = ee.evaluation_set(str(tiny_run), 2048, 16)
    with torch.no_grad():
        _, loss = model(x, y)
    assert summary["checkpoints"][-1]["CE"] == pytest.approx(loss.item(), abs=1e-5)
    assert (tiny_run / "error_entropy.png").is_file()


def test_cli_bad_input_is_one_line(tiny_run, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text(json.dumps({"train": {"dataset": "stdlib"}, "model": {}}))
    for args, message in (((str(empty),), "no checkpoints"), ((str(tmp_path / "missing"),), "no such directory"),
                          ((str(tiny_run), "--tokens=2048", "--context=64"), "block_size is 16"),
                          ((str(tiny_run), "--tokens=10000000"), "too few")):
        assert ee.main([*args, "--no_progress"]) == 2, args     # main() is the command line, in-process
        stderr = capsys.readouterr().err
        assert stderr.startswith("error_entropy.py: error:") and message in stderr, stderr
        assert len(stderr.strip().splitlines()) == 1
