"""
timescale_plots.py: the figures and the report section of timescale.py (the one-third time-scaling
lens), drawn from what timescale.py computes; nothing is measured here.

    timescale_toy.png    the toy: loss against dynamic time tau = sum lr on log-log axes with the
                         fitted c tau^-alpha + L0, the high-temperature control, the logit scale
    timescale_runs.png   our runs the same way: the fits over the last decade of tau and from t_d,
                         t_d marked, the logit scale on the probe against tau

Python API: plot_toy(toy, fit, control, path); plot_runs(results, path); markdown_table(rows) with
rows from timescale.summary_row; report_section(run_dirs, fits, out_dir) -> (markdown, dict), the
section reproduce.py puts in its report. This file imports timescale.py; timescale.py's command
line imports this one only when it runs (so neither is imported half-way through the other).
"""
import os

import numpy as np

from support.files import save_figure

from experiments.timescale import PAPER_PYTHIA_ALPHA, WINDOW_DECADES, analyse_run, summary_row, time_power_law_curve


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_toy(toy, fit, control, path):
    """The paper's figure: loss against tau on log-log axes with the fitted c tau^-alpha + L0
    (the window in bold), the high-temperature control, and the logit scale against tau."""
    plt = _pyplot()
    figure, (ax_loss, ax_scale) = plt.subplots(1, 2, figsize=(10, 4))
    runs = [(toy, "C0", f"T={toy['settings']['temperature']:g}")]
    if control is not None:
        runs.append((control, "0.5", f"T={control['settings']['temperature']:g} (control)"))
    for run, colour, label in runs:
        positive = (run["tau"] > 0) & (run["loss"] > 0)
        ax_loss.plot(run["tau"][positive], run["loss"][positive], color=colour, lw=1, label=label)
        ax_scale.plot(run["tau"][run["tau"] > 0], run["logit_scale"][run["tau"] > 0], color=colour, lw=1,
                      label=label)
    dense = np.geomspace(fit["tau_first"], fit["tau_last"], 100)
    ax_loss.plot(dense, time_power_law_curve(fit, dense), "k--", lw=1.5,
                 label=f"fit: {fit['c']:.3g} τ^-{fit['alpha']:.3f} + {fit['L0']:.3g}")
    scale_at_end = toy["logit_scale"][-1]
    ax_scale.plot(dense, scale_at_end * (dense / toy["tau"][-1]) ** fit["logit_scale_slope"], "k--", lw=1.5,
                  label=f"slope {fit['logit_scale_slope']:.3f}")
    ax_loss.set(xscale="log", yscale="log", xlabel="dynamic time τ = Σ lr", ylabel="KL(teacher ‖ student) (nats)",
                title=f"the toy's loss; dashed: the fit, α = {fit['alpha']:.3f} ± {fit['alpha_err']:.3f} (paper: 1/3)")
    ax_scale.set(xscale="log", yscale="log", xlabel="dynamic time τ = Σ lr", ylabel="logit scale (std over vocab)",
                 title="the student's logit scale; dashed: its slope over the window")
    from plots import plain_log_axis
    for axes in (ax_loss, ax_scale):
        axes.legend(fontsize=8)
        axes.grid(alpha=0.3, which="both")
        axes.title.set_fontsize(9)
        plain_log_axis(axes.xaxis)
        plain_log_axis(axes.yaxis)
    figure.tight_layout()
    save_figure(figure, path)


def plot_runs(results, path):
    """Our runs like the toy: loss against tau (log-log) with the two fits, t_d marked (only where
    bnsl.py's fit supports a break), and the logit scale on the probe against tau; one colour per
    run. The title names only the lines drawn. Writes path; returns the (closed) figure."""
    from plots import legend_below, plain_log_axis
    plt = _pyplot()
    figure, (ax_loss, ax_scale) = plt.subplots(1, 2, figsize=(11, 4.8))
    for index, r in enumerate(results):
        colour = f"C{index % 10}"
        fit = r["fit"]
        ax_loss.plot(r["tau"], r["loss"], color=colour, lw=2, alpha=0.3)
        dense = np.geomspace(fit["tau_first"], fit["tau_last"], 100)
        ax_loss.plot(dense, time_power_law_curve(fit, dense), color=colour, lw=1.2,
                     label=f"{r['name']}: α={fit['alpha']:.2f}±{fit['alpha_err']:.2f} (last decade)")
        if r["fit_after_t_d"] is not None:
            after = r["fit_after_t_d"]
            dense = np.geomspace(after["tau_first"], after["tau_last"], 100)
            ax_loss.plot(dense, time_power_law_curve(after, dense), color=colour, lw=1, ls="--",
                         label=f"{r['name']}: α={after['alpha']:.2f}±{after['alpha_err']:.2f} (from t_d)")
        ax_scale.plot(r["scale_tau"], r["logit_scale"], "o-", color=colour, ms=3, lw=1,
                      label=f"{r['name']}: slope {r['logit_scale_slope']:.2f} (last decade)")
        if r["tau_d"] is not None:
            for axes in (ax_loss, ax_scale):
                axes.axvline(r["tau_d"], color=colour, lw=0.8, ls="-.")
    with_t_d = [r["name"] for r in results if r["tau_d"] is not None]
    drawn = ["solid: the fit over the last decade of τ"]
    if any(r["fit_after_t_d"] is not None for r in results):
        drawn.append("dashed: the fit from t_d")
    drawn.append("dash-dot: t_d" if len(with_t_d) == len(results) else
                 f"dash-dot: t_d, {', '.join(with_t_d)} only (no supported break in the others)" if with_t_d else
                 "no supported t_d, so no fit from it")
    ax_loss.set(xscale="log", yscale="log", xlabel="dynamic time τ = Σ lr",
                ylabel="training loss (nats per token, smoothed)", title="c τ^-α + L0\n" + "\n".join(drawn))
    ax_scale.set(xscale="log", yscale="log", xlabel="dynamic time τ = Σ lr",
                 ylabel="logit scale (std over the vocabulary)",
                 title="the logit scale, mean over the probe's tokens")
    for axes in (ax_loss, ax_scale):
        axes.grid(alpha=0.3, which="both")
        axes.title.set_fontsize(9)
        plain_log_axis(axes.xaxis)
        plain_log_axis(axes.yaxis)
        legend_below(axes)
    figure.suptitle("One-third time scaling: the loss and the logit scale against dynamic time", fontsize=10)
    figure.tight_layout()
    save_figure(figure, path, bbox_inches="tight")
    return figure


def plus_minus(value, error, digits=3):
    if value is None or not np.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f}" + (f" ± {error:.{digits}f}" if error is not None and np.isfinite(error) else "")


def markdown_table(rows):
    lines = ["| run | t_d | α, last decade of τ (steps) | L0 | RSLE | α from t_d | logit-scale slope, last decade "
             "| before t_d / after t_d |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        t_d = "n/a" if row["t_d"] is None else f"{row['t_d']:.0f}"
        lines.append(
            f"| {row['name']} | {t_d} | "
            f"{plus_minus(row['alpha'], row['alpha_err'])} ({row['window_first_step']:.0f}+) | {row['L0']:.3f} | "
            f"{row['rsle']:.4f} | {plus_minus(row['alpha_after_t_d'], row['alpha_after_t_d_err'])} | "
            f"{plus_minus(row['logit_scale_slope'], row['logit_scale_slope_err'])} | "
            f"{plus_minus(row['logit_scale_slope_before_t_d'], None, 2)} / "
            f"{plus_minus(row['logit_scale_slope_after_t_d'], None, 2)} |")
    return lines


def report_section(run_dirs, fits, out_dir, progress=True):
    """reproduce.py's section on this lens: (markdown text, JSON-ready dict); writes
    timescale_runs.png into out_dir. fits: bnsl.py fit dicts of the runs (their name and t_d)."""
    results = [analyse_run(run_dir, t_d=fit["t_d"] if fit.get("supported", True) else None,
                           name=fit.get("name"), progress=progress)
               for run_dir, fit in zip(run_dirs, fits)]
    plot_runs(results, os.path.join(out_dir, "timescale_runs.png"))
    rows = [summary_row(r) for r in results]
    pythia = ", ".join(f"{size} {alpha:.3f}±{error:.3f}" for size, (alpha, error) in PAPER_PYTHIA_ALPHA.items())
    lines = ["## A second lens: one-third time scaling (arXiv 2602.03685)", "",
             "The loss against dynamic time τ = Σ lr, fitted as log L = log(c τ^-α + L0) over the last "
             "decade of τ (the stated rule) and from t_d to the end; the logit scale is the std of the "
             "logits over the vocabulary on the probe, mean over its tokens, at each checkpoint, with "
             "its log–log slope against τ. The paper's theory: α = 1/3 and a logit scale growing as "
             f"τ^(1/3); its Pythia fits: α {pythia}.", ""]
    lines += markdown_table(rows)
    lines += [""] + [f"- {row['name']}: {row['warning']}" for row in rows if row["warning"]]
    lines += ["", "![loss and logit scale against dynamic time](timescale_runs.png)", ""]
    return "\n".join(lines), {"rule": f"fit window: tau >= tau_T / 10^{WINDOW_DECADES:g}; "
                                      "also from t_d (bnsl.py) to the end", "runs": rows}
