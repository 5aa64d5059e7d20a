"""Tests for the calibrated gradient opposition: the random-sign nulls, D against N, the extended
probe and zsl.py across processes (token_grads.py, zsl.py, runfiles.py; docs/science.md §6)."""
import json
import math
import os
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest
import torch

import token_grads
import train
import zsl
from support import zsl_cli
from support import runfiles

from test_zsl import ZSL, make_run_dir, tiny_model, tokens

from data import prepare
from support.cli import UsageError


def sums_of(G, signs):
    """The reference sums of per-token gradients G [N, P] (one tensor 'w'), sign patterns [K, N]."""
    G = torch.as_tensor(G, dtype=torch.float64)
    return {"sum_grad": {"w": G.sum(0)}, "sum_abs_grad": {"w": G.abs().sum(0)},
            "sum_sq_grad": {"w": (G * G).sum(0)}, "sum_signed_grad": {"w": signs.double() @ G},
            "n_tokens": G.shape[0]}


def random_signs(K, N, seed):
    return token_grads.sign_patterns(K, 1, N, seed=seed)[:, 0]


# --- the nulls on synthetic per-token gradients with known answers ------------------------------

def test_random_sign_gradients_sit_on_the_null_and_aligned_ones_below_it():
    rng = np.random.default_rng(0)
    N, P, K = 256, 2000, 16
    magnitudes = rng.lognormal(size=(N, P))
    coin_flips = rng.choice([-1.0, 1.0], size=(N, P))
    s = zsl.gradient_summary(sums_of(coin_flips * magnitudes, random_signs(K, N, seed=5)))
    spread = s["D_null_mc_se"] * math.sqrt(K)      # the spread of one random-sign draw of D
    assert 0 < spread < 0.01
    assert abs(s["D_grad"] - s["D_null_mc"]) < 4 * spread + 4 * s["D_null_mc_se"]
    assert abs(s["D_grad"] - s["D_null_sign"]) < 0.01   # the CLT null is good at N = 256
    assert s["D_null_sign"] > 0.9                        # and D is high with nothing systematic
    # the same magnitudes, 60% positive: more aligned than chance, far outside the Monte Carlo error
    biased = np.where(rng.random((N, P)) < 0.6, 1.0, -1.0)
    b = zsl.gradient_summary(sums_of(biased * magnitudes, random_signs(K, N, seed=5)))
    assert b["excess_mc"] > 0.05 > 20 * spread and b["excess_sign"] > 0.05


def test_identical_gradients_give_D_zero_and_the_analytic_null():
    N, K = 16, 8
    G = np.tile(np.array([0.5, -2.0, 3.0]), (N, 1))
    signs = random_signs(K, N, seed=3)
    s = zsl.gradient_summary(sums_of(G, signs))
    assert s["D_grad"] == pytest.approx(0.0, abs=1e-12)
    # C_j^0 = sqrt(2/π) sqrt(N g²) / (N |g|) = sqrt(2/(π N)) for every element
    assert s["D_null_sign"] == pytest.approx(1 - math.sqrt(2 / (math.pi * N)), abs=1e-12)
    # C_j^mc = mean_k |Σ_i ε_ki| / N, the same for every element
    assert s["D_null_mc"] == pytest.approx(1 - float(signs.sum(1).abs().mean()) / N, abs=1e-12)
    assert s["excess_sign"] == pytest.approx(s["D_null_sign"])


def test_cancelling_pairs_give_D_one_and_a_null_well_below_one():
    N, K = 16, 8
    g = np.array([[1.0, -0.3, 2.0, 0.7]])
    G = np.concatenate([np.tile(g, (N // 2, 1)), np.tile(-g, (N // 2, 1))])
    s = zsl.gradient_summary(sums_of(G, random_signs(K, N, seed=4)))
    assert s["D_grad"] == pytest.approx(1.0, abs=1e-12)
    assert s["D_null_sign"] == pytest.approx(1 - math.sqrt(2 / (math.pi * N)), abs=1e-12)  # 0.80
    assert s["D_null_mc"] < 0.95 and s["excess_mc"] < -0.05  # more opposed than chance


# --- the engine: fast path against the naive loop, subsets against brute force ------------------

def per_token_gradients(model, x, y):
    """Every token's gradient, flattened and concatenated over parameters: [B*T, P] (brute force)."""
    rows = []
    for b in range(x.shape[0]):
        _, losses = model(x[b:b + 1], y[b:b + 1], per_token=True)
        for t in range(x.shape[1]):
            grads = torch.autograd.grad(losses[0, t], list(model.parameters()), retain_graph=True)
            rows.append(torch.cat([g.flatten() for g in grads]))
    return torch.stack(rows)


def flat(sums, key, n_signs=None):
    parts = sums[key].values()
    return torch.cat([p.reshape(n_signs, -1) if n_signs else p.flatten() for p in parts], dim=-1)


def test_fast_path_streams_the_same_four_sums_per_subset_as_the_naive_loop():
    model = tiny_model(n_layer=2)
    x, y = tokens(3, 8)
    signs = token_grads.sign_patterns(4, 3, 8)
    segment, sizes = token_grads.nested_subsets(3, 8, [5, 12])
    assert sizes == [5, 12, 24]
    naive = zsl.naive_per_token_grad_stats(model, x, y, signs=signs, segment=segment)
    fast = zsl.per_token_grad_stats(model, x, y, chunk=3, seq_chunk=2, signs=signs, segment=segment)
    for key in token_grads.SUMS:
        K = 4 if key == "sum_signed_grad" else None
        for a, b in [(naive, fast)] + list(zip(naive["subsets"], fast["subsets"])):
            ref = flat(a, key, K)
            err = float((flat(b, key, K) - ref).norm() / ref.norm())
            assert err < 1e-6, f"{key}: relative error {err:.1e}"
    assert [b["n_tokens"] for b in fast["subsets"]] == [5, 7, 12]


def test_nested_subsets_match_brute_force_and_the_all_tokens_row_is_the_main_summary():
    model = tiny_model(n_layer=1)
    x, y = tokens(2, 8)
    G = per_token_gradients(model, x, y).double()          # token i = (b, t) in row b * 8 + t
    signs = token_grads.sign_patterns(3, 2, 8)
    segment, sizes = token_grads.nested_subsets(2, 8, [4, 64, 8, 4])
    assert sizes == [4, 8, 16]                               # sorted, deduplicated, cut, plus all
    members = [set(np.flatnonzero(segment.flatten().numpy() <= k)) for k in range(len(sizes))]
    assert [len(m) for m in members] == sizes
    assert members[0] < members[1] < members[2]              # nested
    # the same fixed order whatever sizes are asked: the 4 tokens are the same 4 tokens
    other, _ = token_grads.nested_subsets(2, 8, [4])
    assert set(np.flatnonzero(other.flatten().numpy() == 0)) == members[0]
    stats = zsl.per_token_grad_stats(model, x, y, signs=signs, segment=segment)
    rows = zsl.by_n(stats)
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    for row, tokens_in in zip(rows, members):
        idx = sorted(tokens_in)
        g = G[idx]
        brute = {"n_tokens": len(idx)}
        for key, values in (("sum_grad", g.sum(0)), ("sum_abs_grad", g.abs().sum(0)),
                            ("sum_sq_grad", (g * g).sum(0)),
                            ("sum_signed_grad", signs.flatten(1)[:, idx].double() @ g)):
            parts = values.split([math.prod(s) for s in shapes], dim=-1)
            brute[key] = {n: (p.reshape(3, *s) if key == "sum_signed_grad" else p.reshape(s))
                          for n, p, s in zip(names, parts, shapes)}
        expected = zsl.gradient_summary(brute)
        for key in zsl.BY_N_KEYS:
            assert row[key] == pytest.approx(expected[key], abs=1e-6), (len(idx), key)
    # N = all: the main numbers, also as streamed without any subsets
    whole = zsl.gradient_summary(zsl.per_token_grad_stats(model, x, y, signs=signs))
    for key in zsl.BY_N_KEYS:
        assert rows[-1][key] == pytest.approx(whole[key], abs=1e-6), key


# --- a run directory: D against N in zsl.json, a probe beyond the recorded one ------------------

@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run_dir(str(tmp_path_factory.mktemp("zsl_null") / "run"))


def test_gradient_interference_reports_nulls_and_D_against_N(run_dir):
    (row,) = zsl.gradient_interference(run_dir, steps=[8], subset_sizes=[8], n_signs=4)
    assert [r["n_tokens"] for r in row["by_n"]] == [8, 24]
    for key in zsl.BY_N_KEYS:
        assert row["by_n"][-1][key] == row[key]
    assert row["n_signs"] == 4 and sum(row["hist_counts_null_mc"]) == 4 * row["n_elements"]
    assert sum(row["hist_counts_null_sign"]) == row["n_elements"]
    tensor = next(t for t in row["per_tensor"] if not t["embedding"])
    assert tensor["excess_mc"] == pytest.approx(tensor["D_null_mc"] - tensor["D_mean"])


def with_dataset(run_dir, path, n_probe=3, batch_size=4, val_tokens=4000):
    """A copy of run_dir whose config names a real dataset and whose probe came from it."""
    run = shutil.copytree(run_dir, path / "run")
    rng = np.random.default_rng(0)
    prepare.write_dataset(str(path / "data"), rng.integers(0, 32, 2000), rng.integers(0, 32, val_tokens),
                          {"vocab_size": 32})
    config = json.load(open(run / "config.json"))
    config["train"].update(dataset=str(path / "data"), n_probe=n_probe, batch_size=batch_size)
    json.dump(config, open(run / "config.json", "w"))
    _, val, _ = prepare.load_dataset(str(path / "data"))
    c = types.SimpleNamespace(n_probe=n_probe, batch_size=batch_size, block_size=8)
    px, py, ux, uy = train.fixed_heldout_sets(val, c)
    np.savez(run / "probe.npz", x=px.numpy(), y=py.numpy(), update_x=ux.numpy(), update_y=uy.numpy())
    return str(run), val


def test_probe_beyond_the_recorded_one_comes_from_unused_validation_windows(run_dir, tmp_path):
    run, val = with_dataset(run_dir, tmp_path)
    probe = runfiles.load_probe(run)
    x, y, T = runfiles.probe_tokens_for(run, probe, 40 * 8)
    assert x.shape == (40, 8) and T == 8
    assert torch.equal(x[:3], probe["x"]) and torch.equal(y[:3], probe["y"])  # the recorded probe first
    assert torch.equal(x[:, 1:], y[:, :-1])
    used = np.concatenate([probe["x"].numpy(), probe["update_x"].numpy()])
    starts = []
    for row in x[3:].numpy():   # each extra window is a window of val, sharing no token with a used one
        (start,) = [s for s in range(len(val) - 8) if np.array_equal(val[s:s + 8], row)][:1]
        starts.append(start)
    used_starts = [s for s in range(len(val) - 8) if any(np.array_equal(val[s:s + 8], u) for u in used)]
    assert min(abs(a - b) for a in starts for b in used_starts) > 8
    smaller, _, _ = runfiles.probe_tokens_for(run, probe, 10 * 8)
    assert torch.equal(smaller, x[:10])                                       # a larger probe extends a smaller
    (row,) = zsl.gradient_interference(run, steps=[8], probe_tokens=6 * 8, update=False, n_signs=2)
    assert row["n_tokens"] == 48
    with pytest.raises(UsageError, match="at most"):
        runfiles.probe_tokens_for(run, probe, 1000 * 8)
    with pytest.raises(UsageError, match="names no dataset"):
        runfiles.probe_tokens_for(run_dir, runfiles.load_probe(run_dir), 40 * 8)


def test_probe_beyond_the_recorded_one_refuses_a_changed_dataset(run_dir, tmp_path):
    run, _ = with_dataset(run_dir, tmp_path)
    rng = np.random.default_rng(1)
    prepare.write_dataset(str(tmp_path / "data"), rng.integers(0, 32, 2000), rng.integers(0, 32, 4000),
                          {"vocab_size": 32})
    with pytest.raises(UsageError, match="not the one"):
        runfiles.probe_tokens_for(run, runfiles.load_probe(run), 40 * 8)


# --- across processes ---------------------------------------------------------------------------

def numbers_close(a, b, path=""):
    """Every number of two JSON trees equal to 1e-6; the same structure otherwise. Histogram counts
    may move by one where a C_j sits on a bin edge (float sums in another order, ~1e-7 apart)."""
    if path.split(".")[-1].startswith("hist_counts") and a is not None:
        assert sum(a) == sum(b) and sum(abs(u - v) for u, v in zip(a, b)) <= 2 + sum(a) // 1000, path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            if k != "run_dir":
                numbers_close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for k, (u, v) in enumerate(zip(a, b)):
            numbers_close(u, v, f"{path}[{k}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, abs=1e-6), path
    else:
        assert a == b, path


def test_two_processes_write_the_same_zsl_json_as_one(run_dir, tmp_path):
    one = shutil.copytree(run_dir, tmp_path / "one")
    two = shutil.copytree(run_dir, tmp_path / "two")
    flags = ["--no_progress", "--threads", "1", "--max_checkpoints", "2", "--subsets", "8"]
    assert zsl_cli.main([str(one), *flags]) == 0
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             ZSL, str(two), *flags], capture_output=True, text=True, timeout=180,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr.count("process") >= 2 and "on 2 processes" in result.stderr  # time per checkpoint
    for png in ("zsl_null.png", "zsl_n.png", "zsl_hist.png"):
        assert os.path.getsize(one / png) > 1000 and os.path.getsize(two / png) > 1000
    a, b = (json.load(open(d / "zsl.json")) for d in (one, two))
    assert len(a["gradient_interference"]) == 2
    numbers_close(a, b)


# --- reproduce.py's finding 6 -------------------------------------------------------------------

def test_finding_6_holds_when_the_excess_halves_and_fails_otherwise():
    from experiments import reproduce
    holds = lambda rows: reproduce.judge_finding_6(rows)[2][0] == reproduce.HOLDS  # (state, why)  # noqa: E731
    row = lambda before, after: {"name": "1x32", "t_d": 100.0, "excess_before": before, "excess_after": after}  # noqa: E731
    assert holds([row(0.05, 0.008), row(0.04, 0.02)])
    assert not holds([row(0.05, 0.008), row(0.04, 0.021)])   # one size keeps more than half
    assert not holds([row(-0.01, -0.03), row(0.04, 0.01)])    # no excess alignment to start with
    assert not holds([row(0.05, None), row(0.04, 0.01)])      # no checkpoint after 2 t_d


def test_excess_around_deceleration_averages_the_right_checkpoints():
    summary = {"gradient_interference": [{"step": s, "excess_mc": e, "excess_sign": 2 * e} for s, e in
                                         [(16, 0.04), (32, 0.06), (64, 0.5), (256, 0.01), (512, 0.02)]]}
    assert zsl.excess_around_deceleration(summary, 100.0) == pytest.approx((0.05, 0.015))
    assert zsl.excess_around_deceleration(summary, 100.0, key="excess_sign") == pytest.approx((0.1, 0.03))


@pytest.mark.parametrize("flags, message", [(["--n_signs", "1"], "--n_signs must be 0 or at least 2"),
                                            (["--subsets", "64,abc"], "token counts"),
                                            (["--subsets", "0"], "token counts")])
def test_bad_null_flags_give_one_line_errors(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        zsl_cli.parse_args(["run", *flags])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert zsl_cli.parse_args(["run", "--subsets", "none"]).subsets == []
