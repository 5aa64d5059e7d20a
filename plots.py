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
    loss_fits.png  (reproduce.py) the training loss and bnsl.py's 1-break fit per size: a fit the
                   report rejects is drawn grey and dashed, its break hollow, with the reason

write_figures(summaries, fig_dir, hist_step=None) draws the ones the summaries have data for;
zsl.py's command line (support/zsl_cli.py) calls it. Nothing here computes a measurement.
Summaries from reproduce.py also carry "octaves" (D(Δℓ) on the probe from record s to 2s, what
its finding 4 judges), "fit_start" (the first fitted step) and "t_d_rejected" (the break of a fit
it rejects): zsl_loss.png then shows the judged curve, the rule's thresholds around t_d, the steps
before the fit window, and the rejected break, so that it says what the report concludes.
Every figure: t_d (dash-dot) only where the fit supports a break; loss axes in nats per token;
log axes labelled with plain numbers; legends outside the data.
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


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")   # files only, never a window
    import matplotlib.pyplot as plt
    return plt


def _plain(value, _=None):
    """A tick label: 0.05, 4.5, 300, 20,000 (not 4.5×10⁰ or 2e+04); powers beyond as 1e-05, 1e+07."""
    if 1e-4 <= abs(value) < 1e4:
        return f"{value:g}"
    return f"{value:,.0f}" if 1e4 <= abs(value) < 1e7 else f"{value:.0e}"


def plain_log_axis(axis):
    """Tick labels of a log axis as plain numbers, at least three of them: at each power of 10 over
    three decades or more, else at 1, 2 and 5 (or 1, 2, 3 and 5) times powers of 10, else (less
    than a decade with none of those inside) about five evenly chosen ticks, as a linear axis."""
    import matplotlib.ticker as ticker
    low, high = sorted(axis.get_view_interval())
    locator = ticker.MaxNLocator(nbins=5)
    if low > 0:
        for subs in ((1.0,), (1.0, 2.0, 5.0), (1.0, 2.0, 3.0, 5.0)):
            candidate = ticker.LogLocator(base=10, subs=subs)
            if sum(low <= t <= high for t in candidate.tick_values(low, high)) >= 3:
                locator = candidate
                break
    axis.set_major_locator(locator)
    axis.set_major_formatter(ticker.FuncFormatter(_plain))
    axis.set_minor_formatter(ticker.NullFormatter())
    if isinstance(locator, ticker.MaxNLocator):
        axis.set_minor_locator(ticker.NullLocator())


def legend_below(ax, columns=2, **kwargs):
    """The legend under the axes, outside the data: left out of tight_layout (which would shrink the
    axes to make room), kept by savefig's bbox_inches='tight'."""
    if ax.get_legend_handles_labels()[0]:
        legend = ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=7, ncol=columns,
                           frameon=False, **kwargs)
        legend.set_in_layout(False)


def save(fig, path):
    """Write the figure and close it: the axes laid out without the legends below them (which would
    shrink them), then saved with those legends (bbox_inches='tight' keeps what lies outside)."""
    fig.tight_layout()
    for legend in fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]:
        legend.set_in_layout(True)
    save_figure(fig, path, dpi=110, bbox_inches="tight")  # written whole, then renamed: never half a figure


def _short(reason):
    """The first problem of a fit's warning, up to its explanation: a label's worth."""
    first = (reason or "rejected").split("; ")[0]
    return first.split(" (")[0].split(": ")[0]


def _t_d_note(summaries):
    """What the dash-dot lines are, in a title: t_d where a supported fit gives one."""
    with_t_d = [_label(s) for s in summaries if s.get("t_d")]
    if not with_t_d:
        return "no supported t_d (no dash-dot line)"
    if len(with_t_d) == len(summaries):
        return "dash-dot: t_d"
    return f"dash-dot: t_d where the fit supports a break ({', '.join(with_t_d)} only)"


def _mark_rejected(summary, steps, *axes):
    """A rejected fit's break, grey dotted, if it lies among the plotted steps: it is not a t_d."""
    step = summary.get("t_d_rejected")
    if step and steps and min(steps) <= step <= max(steps):
        for ax in axes:
            ax.axvline(step, color="0.55", lw=1, ls=":")
        return True
    return False


def _shade_before_fit(summaries, first_step, *axes):
    """Grey: the steps before the fit window (reproduce.py's fit_start), which no finding judges."""
    starts = sorted({s["fit_start"] for s in summaries if s.get("fit_start")})
    if not starts or first_step is None:
        return None
    for ax in axes:
        ax.axvspan(first_step, starts[0], color="0.92", zorder=0, lw=0)
    span = f"{starts[0]}" if len(starts) == 1 else f"{starts[0]}–{starts[-1]}"
    return f"before the fit window (steps < {span}): not judged"


def _figure_legend(fig, summaries, styles, extras=()):
    """One legend under the figure: a line per run (its colour), per style, and the extra marks."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    handles = [Line2D([], [], color=colour, lw=2, label=_label(s)) for s, colour, _ in _runs(summaries)]
    handles += [Line2D([], [], color="k", ls=style, marker=marker, ms=4, lw=lw, label=name)
                for name, style, marker, lw in styles]
    for kind, label in extras:
        handles.append(Patch(color="0.92", label=label) if kind == "shade" else
                       Line2D([], [], color="0.35" if kind == "t_d" else "0.55", ls="-." if kind == "t_d" else ":",
                              label=label))
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=4, fontsize=7, frameon=False)


def plot_loss_interference(summaries, path):
    """D(Δℓ) and M(Δℓ) against step. Thin: zsl.py's three variants. With reproduce.py's summaries,
    thick: the probe from record s to 2s, which its finding 4 judges, with the rule's levels (dotted:
    <= 0.5 over s <= t_d/2, >= 0.8 over s >= t_d) where t_d is supported; grey: the steps before the
    fit window and a rejected fit's break. Writes path; returns the (closed) figure."""
    plt = _pyplot()
    fig, (ax_D, ax_M) = plt.subplots(1, 2, figsize=(11, 4.2))
    judged = any(s.get("octaves") for s in summaries)
    thin = dict(lw=0.9, alpha=0.6) if judged else dict(lw=1.2)
    rejected = False
    for s, colour, _ in _runs(summaries):
        for key, _, style in VARIANTS:
            rows = [r for r in s["loss_interference"] if r[key] is not None]
            steps = [r["step"] for r in rows]
            ax_D.plot(steps, [_number(r[key]["D"]) for r in rows], style, color=colour, **thin)
            ax_M.plot(steps, [_number(r[key]["M"]) for r in rows], style, color=colour, **thin)
        octaves = s.get("octaves") or []
        ax_D.plot([o[0] for o in octaves], [_number(o[2]) for o in octaves], "-", color=colour, lw=2.6)
        if s.get("t_d") and octaves:   # the rule's levels over the windows it averages
            ax_D.hlines(0.5, octaves[0][0], s["t_d"] / 2, colors=colour, linestyles=":", lw=1.8)
            ax_D.hlines(0.8, s["t_d"], octaves[-1][0], colors=colour, linestyles=":", lw=1.8)
        _mark_t_d(s, colour, ax_D, ax_M)
        rejected |= _mark_rejected(s, [r["step"] for r in s["loss_interference"]], ax_D, ax_M)
    all_rows = [r for s in summaries for r in s["loss_interference"]]
    steps, magnitudes = [r["step"] for r in all_rows], [r["probe"]["M"] for r in all_rows]
    shade = _shade_before_fit(summaries, min(steps, default=None), ax_D, ax_M)
    _log_axes(ax_D, steps)
    _log_axes(ax_M, steps, magnitudes)
    ax_D.set(xlabel="step", ylabel="D(Δℓ)  (0: all tokens move together, 1: gains cancel losses)", ylim=(0, 1),
             title="destructive interference D(Δℓ)")
    ax_M.set(xlabel="step", ylabel="M(Δℓ) = mean |Δℓ|  (nats per token)", title="magnitude of the changes")
    for axis in (ax_D.xaxis, ax_M.xaxis, ax_M.yaxis):
        if axis.get_scale() == "log":
            plain_log_axis(axis)
    styles = [(name, style, None, thin["lw"]) for _, name, style in VARIANTS]
    styles += [("probe, record s → 2s: judged (finding 4)", "-", None, 2.6)] if judged else []
    extras = ([("t_d", "t_d (supported fit)")] if any(s.get("t_d") for s in summaries) else []) + \
             ([("rejected", "break of a rejected fit: not a t_d")] if rejected else []) + ([("shade", shade)] if shade else [])
    _figure_legend(fig, summaries, styles, extras)
    if not judged:
        title = f"Per-token loss changes Δℓ between steps; {_t_d_note(summaries)}"
    elif any(s.get("t_d") for s in summaries):
        title = f"Finding 4: D(Δℓ), thick, judged around t_d (dotted: the rule's levels); {_t_d_note(summaries)}"
    else:
        title = "Finding 4 not judged: no size has a supported t_d; thick: D(Δℓ) from record s to 2s, which it would judge"
    fig.suptitle(title, fontsize=9)
    save(fig, path)
    return fig


def plot_gradient_interference(summaries, path):
    """D(∇θℓ) at each checkpoint (mean of 1 − C_j, and the global ratio), and one AdamW step's
    interference from the checkpoint: measured, first-order, and 1 − C_g. Returns the figure."""
    plt = _pyplot()
    fig, (ax_g, ax_u) = plt.subplots(1, 2, figsize=(11, 4.2))
    for s, colour, _ in _runs(summaries):
        rows = s["gradient_interference"]
        steps = [r["step"] for r in rows]
        ax_g.plot(steps, [_number(r["D_grad"]) for r in rows], "o-", color=colour, ms=4)
        ax_g.plot(steps, [_number(r["D_grad_global"]) for r in rows], "s--", color=colour, ms=3)
        upd = [r for r in rows if "update" in r]
        ax_u.plot([r["step"] for r in upd], [_number(r["update"]["D_measured"]) for r in upd], "o-", color=colour, ms=4)
        ax_u.plot([r["step"] for r in upd], [_number(r["update"]["D_predicted"]) for r in upd], "x--", color=colour)
        ax_u.plot([r["step"] for r in upd], [1 - _number(r["update"]["C_g"]) for r in upd], ":", color=colour)
        _mark_t_d(s, colour, ax_g, ax_u)
    steps = [r["step"] for s in summaries for r in s["gradient_interference"]]
    _log_axes(ax_g, steps)
    _log_axes(ax_u, steps)
    ax_g.set(xlabel="checkpoint step", ylabel="D(∇θℓ)  (1: per-token gradients cancel)",
             title="per-token gradient opposition")
    ax_u.set(xlabel="checkpoint step", ylabel="interference on the probe", ylim=(0, 1),
             title="one AdamW step from the checkpoint")
    for ax in (ax_g, ax_u):
        if ax.get_xscale() == "log":
            plain_log_axis(ax.xaxis)
    _figure_legend(fig, summaries, [("D(∇θℓ) = mean of 1 − C_j", "-", "o", 1), ("global 1 − Σ|S|/ΣA", "--", "s", 1),
                                    ("D(Δℓ) of the step, measured", "-", "o", 1),
                                    ("D(Δ̃ℓ), first-order prediction", "--", "x", 1), ("1 − C_g", ":", None, 1)])
    fig.suptitle(f"Finding 5 (D(∇θℓ) after 2 t_d) and the update link; {_t_d_note(summaries)}", fontsize=9)
    save(fig, path)
    return fig


def plot_histogram(summaries, path, hist_step=None):
    """The histogram of C_j at one checkpoint per run (default: the last), beside the C_j of the same
    per-token gradients with random signs. Returns the figure."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    shown = []
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
        shown.append(row["step"])
        # the C_j the same per-token gradients give with random signs: every Monte Carlo pattern's,
        # or (K = 0) the CLT's expected value per element, a narrower histogram by construction
        key, name = (("hist_counts_null_mc", "random signs (Monte Carlo)") if row.get("hist_counts_null_mc")
                     else ("hist_counts_null_sign", "expected with random signs (CLT)"))
        if row.get(key):
            null = np.asarray(row[key], dtype=float)
            ax.stairs(null / max(null.sum(), 1), edges, color=colour, ls="--", label=f"{_label(s)}: {name}")
        _log_axes(ax, [], counts)
    if ax.get_yscale() == "log":
        plain_log_axis(ax.yaxis)
    where = "the last checkpoint" if hist_step is None else f"the checkpoint nearest step {hist_step}"
    ax.set(xlabel="C_j = |Σ_i g_ij| / Σ_i |g_ij|  (0: cancelling, 1: aligned)", ylabel="fraction of non-embedding elements",
           title=f"Gradient coherence per parameter element at {where}")
    ax.title.set_fontsize(9)
    legend_below(ax)
    save(fig, path)
    return fig


def plot_null(summaries, path):
    """D(∇θℓ) against step beside its random-sign nulls, and the excess alignment D_null − D
    (finding 6 of reproduce.py). Returns the figure."""
    plt = _pyplot()
    fig, (ax_D, ax_x) = plt.subplots(1, 2, figsize=(11, 4.2))
    for s, colour, _ in _runs(summaries):
        rows = [r for r in s["gradient_interference"] if r.get("D_null_sign") is not None]
        steps = np.array([r["step"] for r in rows])
        ax_D.plot(steps, [r["D_grad"] for r in rows], "o-", color=colour, ms=3)
        ax_D.plot(steps, [r["D_null_sign"] for r in rows], ":", color=colour)
        mc = [r for r in rows if r.get("D_null_mc") is not None]
        if mc:
            mean, se = (np.array([r[key] or 0.0 for r in mc]) for key in ("D_null_mc", "D_null_mc_se"))
            ax_D.plot([r["step"] for r in mc], mean, "--", color=colour)
            ax_D.fill_between([r["step"] for r in mc], mean - 2 * se, mean + 2 * se, color=colour, alpha=0.2)
            ax_x.plot([r["step"] for r in mc], [r["excess_mc"] for r in mc], "o-", color=colour, ms=3)
        ax_x.plot(steps, [r["excess_sign"] for r in rows], "x:", color=colour)
        _mark_t_d(s, colour, ax_D, ax_x)
    n_tokens = sorted({r["n_tokens"] for s in summaries for r in s["gradient_interference"]})
    ax_D.set(xscale="log", xlabel="checkpoint step", ylabel="D(∇θℓ)",
             title=f"gradient opposition and its random-sign null (N = {', '.join(map(str, n_tokens))} tokens)")
    ax_x.axhline(0, color="grey", lw=0.8)
    ax_x.set(xscale="log", xlabel="checkpoint step", ylabel="D_null − D(∇θℓ)",
             title="excess alignment: > 0 = more aligned than random signs")
    for ax in (ax_D, ax_x):
        ax.title.set_fontsize(9)
        plain_log_axis(ax.xaxis)
    _figure_legend(fig, summaries, [("D(∇θℓ)", "-", "o", 1), ("null, CLT", ":", None, 1),
                                    ("null, Monte Carlo (band: ± 2 se)", "--", None, 1),
                                    ("Monte Carlo null − D", "-", "o", 1), ("CLT null − D", ":", "x", 1)])
    fig.suptitle(f"Finding 6: the excess alignment over random signs; {_t_d_note(summaries)}", fontsize=9)
    save(fig, path)
    return fig


def plot_by_n(summaries, path, n_checkpoints=4):
    """D against the number N of pooled tokens, with its null, at a few checkpoints per run."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(summaries), figsize=(5.5 * len(summaries), 4.2), squeeze=False)
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
        plain_log_axis(ax.xaxis)
        legend_below(ax)
    save(fig, path)
    return fig


def plot_loss_fits(fits, path):
    """reproduce.py's loss_fits.png: each size's fitted loss points and bnsl.py's 1-break fit, on
    log-log axes. A supported fit: solid, t_d marked, its two power laws (dotted before t_d, dashed
    after). A rejected fit: grey dashed, its break hollow (if among the fitted steps), the reason in
    its label. fits: bnsl.fit_bnsl results with a "name". Writes path; returns the (closed) figure."""
    import bnsl
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for index, fit in enumerate(fits):
        colour, steps = f"C{index % 10}", np.asarray(fit["steps"], dtype=float)
        dense = np.geomspace(steps[0], steps[-1], 400)
        name = fit.get("name", f"curve {index + 1}")
        if not fit["supported"] or fit["t_d"] is None:
            ax.plot(steps, fit["losses"], color=colour, lw=2.5, alpha=0.35,
                    label=f"{name}: fit rejected, {_short(fit['warning'])}")
            ax.plot(dense, bnsl.bnsl_curve(fit, dense), color="0.45", ls="--", lw=1)
            if fit["t_d"] is not None and steps[0] <= fit["t_d"] <= steps[-1]:
                ax.plot([fit["t_d"]], bnsl.bnsl_curve(fit, np.array([fit["t_d"]])), "o", mfc="none", mec="0.45", ms=7)
            continue
        t_d, L_d, r_d = fit["t_d"], fit["L_d"], fit["r_d"]
        ax.plot(steps, fit["losses"], color=colour, lw=2.5, alpha=0.35,
                label=f"{name}: t_d = {t_d:.0f}, L_d = {L_d:.3f}, r_d = {r_d:.3f}")
        ax.plot(dense, bnsl.bnsl_curve(fit, dense), color=colour, lw=1.2)
        ax.plot(dense, fit["b"] * dense ** -fit["c0"], color=colour, ls=":", lw=1)     # b t^-c0, on past t_d
        after = dense[dense >= t_d]
        ax.plot(after, L_d * (t_d / after) ** r_d, color=colour, ls="--", lw=1)      # L_d (t_d/t)^r_d
        ax.plot([t_d], [L_d], "o", color=colour, ms=6)
        ax.axvline(t_d, color=colour, lw=0.6, ls="-.", alpha=0.6)
    losses = np.concatenate([np.asarray(fit["losses"], dtype=float) for fit in fits])
    ax.set(xscale="log", yscale="log", xlabel="step", ylabel="training loss (nats per token, smoothed)",
           ylim=(0.97 * losses.min(), 1.03 * losses.max()))
    plain_log_axis(ax.xaxis)
    plain_log_axis(ax.yaxis)
    supported = sum(bool(fit["supported"]) for fit in fits)
    lines = [f"Finding 1: the 1-break BNSL fit per size; {supported} of {len(fits)} breaks supported",
             "thick pale: the fitted points" + ("; solid: the fit; dot: t_d" if supported else "")]
    if supported:
        lines.append("dotted: the first power law, continued past t_d; dashed: the power law after t_d")
    if supported < len(fits):
        lines.append("grey dashed: a rejected fit; hollow circle: its break (not a t_d)")
    title = "\n".join(lines)
    ax.set_title(title, fontsize=9)
    legend_below(ax, columns=1)
    save(fig, path)
    return fig


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
    """One fitted curve on log-log axes; with mark_t_d also t_d and its two straight segments, each
    continued across t_d (on its own side a segment lies on the fit; across it, it shows the bend)."""
    steps = fit["steps"]
    dense = np.geomspace(steps[0], steps[-1], 400)
    axes.plot(steps, fit["losses"], color=colour, lw=2, alpha=0.35)
    axes.plot(dense, bnsl.bnsl_curve(fit, dense), color=colour, lw=1, label=label)
    if not mark_t_d:
        return
    t_d, L_d, r_d = fit["t_d"], fit["L_d"], fit["r_d"]
    end = fit["d2"] if fit["breaks"] == 2 else steps[-1]        # segment 2 ends at break 2
    upto_end = dense[dense <= end]
    axes.plot(dense, fit["b"] * dense ** -fit["c0"], color=colour, ls=":", lw=1)   # b t^-c0
    axes.plot(upto_end, L_d * (t_d / upto_end) ** r_d, color=colour, ls="--", lw=1)   # L_d (t_d/t)^r_d
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
    segments = "\ndotted / dashed: the power law before / after t_d, continued across it" if any_marked else ""
    for axes, clock in zip(panels[0], ["step", "tau = sum of lr / max lr"]):
        losses = np.concatenate([r["losses"] if clock == "step" else r["tau_fit"]["losses"]
                                 for r in results if clock == "step" or "steps" in (r.get("tau_fit") or {})])
        axes.set(xscale="log", yscale="log", xlabel=clock, ylabel="training loss (nats per token)",
                 ylim=(0.95 * losses.min(), 1.05 * losses.max()),
                 title=f"BNSL fits against {clock.split(' ')[0]}{segments}")
        axes.title.set_fontsize(10)
        plain_log_axis(axes.xaxis)
        axes.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axes.yaxis.set_minor_formatter(matplotlib.ticker.ScalarFormatter())
        axes.legend(fontsize=7)
    figure.tight_layout()
    save_figure(figure, path)
