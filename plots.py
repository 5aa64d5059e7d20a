"""
The figures of bnsl.py and zsl.py, drawn from what they compute (one colour per run, the paper's style).

    bnsl.py --plot FILE  the loss curves on log-log axes, their broken-power-law fits, the two straight
                   segments and t_d where the break is a deceleration (a second panel against tau)

    zsl_loss.png   D(Δℓ) and M(Δℓ) = mean |Δℓ| against step, for the three Δℓ variants (train and probe
                   over one step, probe from one record to the next); dash-dot: t_d from bnsl.py
    zsl_grad.png   D(∇θℓ) per checkpoint (mean of 1 − C_j, and the global 1 − Σ|S|/ΣA), and the update
                   link: D of one AdamW step's measured Δℓ, its first-order prediction Δ̃ℓ, and 1 − C_g
    zsl_hist.png   the histogram of C_j over the non-embedding elements at one checkpoint, beside the
                   C_j the same per-token gradients give with random signs
    zsl_null.png   D(∇θℓ) beside its random-sign nulls (CLT, Monte Carlo ± 2 se), and the excess
                   alignment D_null − D(∇θℓ)
    zsl_n.png      D against the number N of pooled probe tokens, with its null, at a few checkpoints

write_figures(summaries, fig_dir, hist_step=None) draws the ones the summaries have data for;
zsl.py calls it (and keeps the name: zsl.write_figures). Nothing here computes a measurement.
"""
import math
import os

import numpy as np

import bnsl
from support.files import save_figure

VARIANTS = (("train", "train, Δt=1", ":"), ("probe", "probe, Δt=1", "-"), ("interval", "probe, record→next", "--"))


def _label(summary):
    return os.path.basename(summary["run_dir"].rstrip("/"))


def _number(value):
    """A plotted value: None (nan in zsl.json) becomes nan, which matplotlib leaves out."""
    return float("nan") if value is None else float(value)


def _log_axes(ax, x_values, y_values=None):
    """Log scale on the axes that have positive numbers to show (matplotlib fails on none)."""
    for axis, values in (("x", x_values), ("y", y_values)):
        values = np.asarray([_number(v) for v in values] if values is not None else [], dtype=float)
        if values.size and np.any(np.isfinite(values) & (values > 0)):
            getattr(ax, f"set_{axis}scale")("log")


def _runs(summaries):
    """(summary, its colour, the prefix of its labels: the run's name when several runs share a figure)."""
    for k, s in enumerate(summaries):
        yield s, f"C{k % 10}", f"{_label(s)}: " if len(summaries) > 1 else ""


def _mark_t_d(summary, colour, *axes):
    if summary["t_d"]:
        for ax in axes:
            ax.axvline(summary["t_d"], color=colour, alpha=0.5, lw=1, ls="-.")


def _save(fig, path):
    fig.tight_layout()
    save_figure(fig, path, dpi=110)  # written whole, then renamed: never half a figure


def plot_loss_interference(summaries, path):
    import matplotlib.pyplot as plt
    fig, (ax_D, ax_M) = plt.subplots(1, 2, figsize=(11, 4))
    for s, colour, prefix in _runs(summaries):
        for key, name, style in VARIANTS:
            rows = [r for r in s["loss_interference"] if r[key] is not None]
            steps = [r["step"] for r in rows]
            ax_D.plot(steps, [_number(r[key]["D"]) for r in rows], style, color=colour, label=prefix + name)
            ax_M.plot(steps, [_number(r[key]["M"]) for r in rows], style, color=colour)
        _mark_t_d(s, colour, ax_D, ax_M)
    all_rows = [r for s in summaries for r in s["loss_interference"]]
    steps, magnitudes = [r["step"] for r in all_rows], [r["probe"]["M"] for r in all_rows]
    _log_axes(ax_D, steps)
    _log_axes(ax_M, steps, magnitudes)
    ax_D.set(xlabel="step", ylabel="D(Δℓ)", ylim=(0, 1), title="destructive interference")
    ax_M.set(xlabel="step", ylabel="M(Δℓ) = mean |Δℓ|", title="magnitude")
    ax_D.legend(fontsize=7)
    fig.suptitle("per-token loss changes (dash-dot: t_d from bnsl.py)", fontsize=9)
    _save(fig, path)


def plot_gradient_interference(summaries, path):
    import matplotlib.pyplot as plt
    fig, (ax_g, ax_u) = plt.subplots(1, 2, figsize=(11, 4))
    for s, colour, prefix in _runs(summaries):
        rows = s["gradient_interference"]
        steps = [r["step"] for r in rows]
        ax_g.plot(steps, [_number(r["D_grad"]) for r in rows], "o-", color=colour,
                  label=prefix + "D(∇θℓ) mean of 1−C_j")
        ax_g.plot(steps, [_number(r["D_grad_global"]) for r in rows], "s--", color=colour, ms=3,
                  label=prefix + "global 1 − Σ|S|/ΣA")
        upd = [r for r in rows if "update" in r]
        ax_u.plot([r["step"] for r in upd], [_number(r["update"]["D_measured"]) for r in upd], "o-",
                  color=colour, label=prefix + "D(Δℓ) measured")
        ax_u.plot([r["step"] for r in upd], [_number(r["update"]["D_predicted"]) for r in upd], "x--",
                  color=colour, label=prefix + "D(Δ̃ℓ) first order")
        ax_u.plot([r["step"] for r in upd], [1 - _number(r["update"]["C_g"]) for r in upd], ":",
                  color=colour, label=prefix + "1 − C_g")
        _mark_t_d(s, colour, ax_g, ax_u)
    steps = [r["step"] for s in summaries for r in s["gradient_interference"]]
    _log_axes(ax_g, steps)
    _log_axes(ax_u, steps)
    ax_g.set(xlabel="checkpoint step", ylabel="D(∇θℓ)", title="per-token gradient opposition")
    ax_u.set(xlabel="checkpoint step", ylabel="interference", ylim=(0, 1),
             title="one AdamW step from the checkpoint, on the probe")
    ax_g.legend(fontsize=7)
    ax_u.legend(fontsize=7)
    _save(fig, path)


def plot_histogram(summaries, path, hist_step=None):
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for s, colour, _ in _runs(summaries):
        rows = s["gradient_interference"]
        if not rows:
            continue
        want = hist_step if hist_step is not None else rows[-1]["step"]
        row = min(rows, key=lambda r: abs(math.log(r["step"]) - math.log(max(want, 1))))  # nearest step
        counts = np.asarray(row["hist_counts"], dtype=float)
        edges = np.linspace(0, 1, len(counts) + 1)   # zsl.HIST_BINS equal bins on [0, 1]
        ax.stairs(counts / max(counts.sum(), 1), edges, color=colour,
                  label=f"{_label(s)} step {row['step']} (D={_number(row['D_grad']):.3f})")
        # the C_j the same per-token gradients give with random signs: every Monte Carlo pattern's,
        # or (K = 0) the CLT's expected value per element, a narrower histogram by construction
        key, name = (("hist_counts_null_mc", "C_j with random signs (Monte Carlo)") if row.get("hist_counts_null_mc")
                     else ("hist_counts_null_sign", "expected C_j with random signs (CLT)"))
        if row.get(key):
            null = np.asarray(row[key], dtype=float)
            ax.stairs(null / max(null.sum(), 1), edges, color=colour, ls="--", label=name)
        _log_axes(ax, [], counts)
    ax.set(xlabel="C_j = |Σ_i g_ij| / Σ_i |g_ij|", ylabel="fraction of non-embedding elements",
           title="gradient coherence per parameter element")
    ax.legend(fontsize=7)
    _save(fig, path)


def plot_null(summaries, path):
    """D(∇θℓ) against step beside its random-sign nulls, and the excess alignment D_null − D."""
    import matplotlib.pyplot as plt
    fig, (ax_D, ax_x) = plt.subplots(1, 2, figsize=(11, 4))
    for s, colour, prefix in _runs(summaries):
        rows = [r for r in s["gradient_interference"] if r.get("D_null_sign") is not None]
        steps = np.array([r["step"] for r in rows])
        ax_D.plot(steps, [r["D_grad"] for r in rows], "o-", color=colour, ms=3, label=prefix + "D(∇θℓ)")
        ax_D.plot(steps, [r["D_null_sign"] for r in rows], ":", color=colour, label=prefix + "null, CLT")
        mc = [r for r in rows if r.get("D_null_mc") is not None]
        if mc:
            mean, se = (np.array([r[key] or 0.0 for r in mc]) for key in ("D_null_mc", "D_null_mc_se"))
            ax_D.plot([r["step"] for r in mc], mean, "--", color=colour, label=prefix + "null, Monte Carlo")
            ax_D.fill_between([r["step"] for r in mc], mean - 2 * se, mean + 2 * se, color=colour, alpha=0.2)
            ax_x.plot([r["step"] for r in mc], [r["excess_mc"] for r in mc], "o-", color=colour, ms=3,
                      label=prefix + "Monte Carlo null − D")
        ax_x.plot(steps, [r["excess_sign"] for r in rows], "x:", color=colour, label=prefix + "CLT null − D")
        _mark_t_d(s, colour, ax_D, ax_x)
    n_tokens = sorted({r["n_tokens"] for s in summaries for r in s["gradient_interference"]})
    ax_D.set(xscale="log", xlabel="checkpoint step", ylabel="D(∇θℓ)",
             title=f"gradient opposition and its random-sign null (N = {', '.join(map(str, n_tokens))})")
    ax_x.axhline(0, color="grey", lw=0.8)
    ax_x.set(xscale="log", xlabel="checkpoint step", ylabel="D_null − D(∇θℓ)",
             title="excess alignment: > 0 = more aligned than random signs")
    ax_D.legend(fontsize=7)
    ax_x.legend(fontsize=7)
    _save(fig, path)


def plot_by_n(summaries, path, n_checkpoints=4):
    """D against the number N of pooled tokens, with its null, at a few checkpoints per run."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(summaries), figsize=(5.5 * len(summaries), 4), squeeze=False)
    for s, ax in zip(summaries, axes[0]):
        rows = [r for r in s["gradient_interference"] if r.get("by_n")]
        picked = [rows[i] for i in sorted({round(i) for i in np.linspace(0, len(rows) - 1, n_checkpoints)})] if rows else []
        for k, r in enumerate(picked):
            n = [b["n_tokens"] for b in r["by_n"]]
            ax.plot(n, [b["D_grad"] for b in r["by_n"]], "o-", color=f"C{k}", ms=3, label=f"step {r['step']}: D")
            null_key = "D_null_mc" if r["by_n"][0].get("D_null_mc") is not None else "D_null_sign"
            ax.plot(n, [b[null_key] for b in r["by_n"]], "--", color=f"C{k}", label=f"step {r['step']}: null")
        ax.set(xscale="log", xlabel="N, tokens pooled (nested subsets of the probe)", ylabel="D(∇θℓ)",
               title=f"{_label(s)}: D against N (dashed: random-sign null)")
        ax.legend(fontsize=7)
    _save(fig, path)


def write_figures(summaries, fig_dir, hist_step=None):
    """The figures the summaries have data for; a figure of that name left from an earlier
    analysis that has no data now is removed (it would show results zsl.json no longer holds)."""
    loss, grad, hist, null, by_n_path = (os.path.join(fig_dir, name) for name in
                                         ("zsl_loss.png", "zsl_grad.png", "zsl_hist.png", "zsl_null.png", "zsl_n.png"))
    plots = []
    if any(s["loss_interference"] for s in summaries):
        plots.append((loss, lambda path: plot_loss_interference(summaries, path)))
    if any(s["gradient_interference"] for s in summaries):
        plots.append((grad, lambda path: plot_gradient_interference(summaries, path)))
        plots.append((hist, lambda path: plot_histogram(summaries, path, hist_step)))
        plots.append((null, lambda path: plot_null(summaries, path)))
        plots.append((by_n_path, lambda path: plot_by_n(summaries, path)))
    written = [path for path, _ in plots]
    for path in {loss, grad, hist, null, by_n_path} - set(written):
        if os.path.isfile(path):
            os.remove(path)
    for path, plot in plots:
        plot(path)
    return written


# ---------------------------------------------------------------- bnsl.py's figure

def draw_fit(axes, fit, colour, label, mark_t_d):
    """One fitted curve on log-log axes; with mark_t_d also its two straight segments and t_d."""
    steps = fit["steps"]
    dense = np.geomspace(steps[0], steps[-1], 400)
    axes.plot(steps, fit["losses"], color=colour, lw=2, alpha=0.35)
    axes.plot(dense, bnsl.bnsl_curve(fit, dense), color=colour, lw=1, label=label)
    if not mark_t_d:
        return
    t_d, L_d, r_d = fit["t_d"], fit["L_d"], fit["r_d"]
    end = fit["d2"] if fit["breaks"] == 2 else steps[-1]        # segment 2 ends at break 2
    before, after = dense[dense <= t_d], dense[(dense >= t_d) & (dense <= end)]
    axes.plot(before, fit["b"] * before ** -fit["c0"], color=colour, ls=":", lw=1)
    axes.plot(after, L_d * (t_d / after) ** r_d, color=colour, ls="--", lw=1)   # L_d (t_d/t)^r_d
    axes.plot([t_d], [L_d], "o", color=colour, ms=5)
    axes.axvline(t_d, color=colour, lw=0.5, alpha=0.5)


def plot_fits(results, path):
    """bnsl.py --plot: paper-style figure: curves on log-log axes, the fits, their two straight segments, t_d.

    results: fit_bnsl results with a "name"; t_d is marked only for a supported break, and, if
    a result carries a "verdict" (deceleration.py), only for a deceleration. Results with a fit
    in tau ("tau_fit") get a second panel: the loss against tau = sum lr / max lr."""
    import matplotlib.ticker
    import matplotlib.pyplot as plt
    in_tau = any("steps" in (result.get("tau_fit") or {}) for result in results)
    figure, panels = plt.subplots(1, 1 + in_tau, figsize=(7 + 6 * in_tau, 5), squeeze=False)
    any_marked = False
    for index, result in enumerate(results):
        colour, name = f"C{index % 10}", result.get("name", f"curve {index + 1}")
        verdict = result.get("verdict")
        mark = result["t_d"] is not None and result["supported"] and verdict in (None, "deceleration")
        any_marked |= mark
        if mark:
            label = f"{name}: t_d={result['t_d']:.3g}, L_d={result['L_d']:.3g}, r_d={result['r_d']:.3g}"
        elif result["t_d"] is not None:
            label = f"{name}: {verdict or 'no supported deceleration'}"
        else:
            label = name
        draw_fit(panels[0, 0], result, colour, label, mark)
        tau_fit = result.get("tau_fit") or {}
        if "steps" in tau_fit:
            label = (f"{name}: tau_d={tau_fit['t_d']:.3g} (step {result['tau_d_step']:.3g})"
                     if tau_fit["supported"] else f"{name}: no supported break in tau")
            draw_fit(panels[0, 1], tau_fit, colour, label, tau_fit["supported"])
    segments = " (dotted: before t_d, dashed: after)" if any_marked else ""
    for axes, clock in zip(panels[0], ["step", "tau = sum of lr / max lr"]):
        losses = np.concatenate([r["losses"] if clock == "step" else r["tau_fit"]["losses"]
                                 for r in results if clock == "step" or "steps" in (r.get("tau_fit") or {})])
        axes.set(xscale="log", yscale="log", xlabel=clock, ylabel="training loss (nats per token)",
                 ylim=(0.95 * losses.min(), 1.05 * losses.max()),
                 title=f"BNSL fits against {clock.split(' ')[0]}{segments}")
        axes.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axes.yaxis.set_minor_formatter(matplotlib.ticker.ScalarFormatter())
        axes.legend(fontsize=7)
    figure.tight_layout()
    save_figure(figure, path)
