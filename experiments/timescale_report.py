"""
timescale_report.py: the figures, reproduce.py's report section and the command line of timescale.py
(the one-third time-scaling lens), from what timescale.py computes; nothing is measured here.

    python experiments/timescale.py toy | RUN_DIR ...   # runs this file's main()

    timescale_toy.png    the toy: loss against dynamic time tau = sum lr on log-log axes with the
                         fitted c tau^-alpha + L0, the high-temperature control, the logit scale
    timescale_runs.png   our runs the same way: the fits over the last decade of tau and from t_d,
                         t_d marked, the logit scale on the probe against tau

Python API: plot_toy(toy, fit, control, path); plot_runs(results, path); markdown_table(rows) with
rows from timescale.summary_row; report_section(run_dirs, fits, out_dir) -> (markdown, dict), the
section reproduce.py puts in its report; main(argv), the command line. This file imports
timescale.py, never the other way round (timescale.py hands over to main() only when it is the script).
"""
import difflib
import json
import math
import os
import sys

import numpy as np
import torch

from support import runfiles
from support.cli import OneLineParser, UsageError, guarded
from support.files import check_figure_path, json_safe, save_figure, write_figure

from experiments.timescale import (PAPER_PYTHIA_ALPHA, TOY_DEFAULTS, WINDOW_DECADES, add_logit_scales, analyse_run,
                                   fit_log, fit_toy, summary_row, time_power_law_curve, train_toy)


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


# ---------------------------------------------------------------- the command line

def toy_main(argv):
    parser = OneLineParser(prog="timescale.py toy", command="experiments/timescale.py toy", allow_abbrev=False,
                           description="The paper's teacher-student softmax head: loss against tau = "
                           "sum lr, the fitted exponent alpha (1/3 in theory) and the logit scale.")
    for key, kind, text in (("temperature", float, "the teacher's temperature"),
                            ("lr", float, "learning rate (constant)"), ("steps", int, "updates"),
                            ("vocab", int, "vocabulary V"), ("width", int, "input width d"),
                            ("batch", int, "fresh samples per step"), ("seed", int, "random seed"),
                            ("control_temperature", float, "the high-temperature control; 0 for none")):
        parser.add_argument(f"--{key}", type=kind, default=TOY_DEFAULTS[key],
                            help=f"{text} (default {TOY_DEFAULTS[key]})")
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam", help="default adam")
    parser.add_argument("--json", action="store_true", help="print the fitted numbers as JSON")
    parser.add_argument("--plot", metavar="FILE.png", default="timescale_toy.png",
                        help="where the figure goes (default timescale_toy.png; 'none' for no figure)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    check_toy_flags(args)
    torch.set_num_threads(1)   # [1024 x 128] tensors: more threads only add synchronisation
    settings = {key: getattr(args, key) for key in ("temperature", "lr", "steps", "vocab", "width",
                                                     "batch", "seed", "optimizer")}
    toy = train_toy(**settings, progress=not args.no_progress)
    fit = fit_toy(toy)
    control = None
    if args.control_temperature:
        control = train_toy(**{**settings, "temperature": args.control_temperature}, progress=not args.no_progress)
    if args.plot != "none":
        write_figure(args.plot, lambda path: plot_toy(toy, fit, control, path))
    out = {**toy["settings"], **{key: fit[key] for key in (
        "alpha", "alpha_err", "c", "c_err", "L0", "L0_err", "rsle", "logit_scale_slope",
        "logit_scale_slope_err", "tau_first", "tau_last", "n_points", "warning")},
           "final_loss": toy["loss"][-1], "final_logit_scale": toy["logit_scale"][-1]}
    if control is not None:
        out["control"] = {"temperature": args.control_temperature, "final_loss": control["loss"][-1],
                          "loss_at_step_100": control["loss"][min(100, args.steps - 1)]}
    if args.json:
        print(json.dumps(json_safe(out), indent=1))
        return
    print(f"toy: T={args.temperature:g}, lr={args.lr:g} ({args.optimizer}), {args.steps} steps, "
          f"V={args.vocab}, d={args.width}, batch {args.batch}, seed {args.seed}")
    print(f"  alpha = {fit['alpha']:.3f} ± {fit['alpha_err']:.3f} (paper: 1/3), c = {fit['c']:.3g}, "
          f"L0 = {fit['L0']:.3g}, RSLE {fit['rsle']:.3f}, over tau {fit['tau_first']:.3g}..{fit['tau_last']:.3g}"
          + (f"  [{fit['warning']}]" if fit["warning"] else ""))
    print(f"  logit scale slope = {fit['logit_scale_slope']:.3f} ± {fit['logit_scale_slope_err']:.3f} "
          f"(paper: 1/3); final loss {toy['loss'][-1]:.4g}")
    if control is not None:
        print(f"  control T={args.control_temperature:g}: loss {control['loss'][0]:.3g} -> "
              f"{out['control']['loss_at_step_100']:.3g} at step 100 -> {control['loss'][-1]:.3g}")
    if args.plot != "none":
        print(f"  wrote {args.plot}")


def check_toy_flags(args):
    """Every toy flag, before the toy trains (train_toy checks them too, but the control trains second)."""
    for name in ("temperature", "lr"):
        value = getattr(args, name)
        if not (value > 0 and math.isfinite(value)):
            raise UsageError(f"--{name} must be a positive number, got {value}")
    if not (args.control_temperature >= 0 and math.isfinite(args.control_temperature)):
        raise UsageError(f"--control_temperature must be a positive number, or 0 for no control, got "
                         f"{args.control_temperature}")
    for name in ("steps", "vocab", "width", "batch"):
        if getattr(args, name) < 2:
            raise UsageError(f"--{name} must be at least 2, got {getattr(args, name)}")
    if args.steps < 20:
        raise UsageError(f"--steps={args.steps} leaves too few points for the fit over the last decade of tau; "
                         f"give at least 20")
    if not 0 <= args.seed < 2 ** 63:
        raise UsageError(f"--seed must be between 0 and 2**63 - 1, got {args.seed}")
    if args.plot != "none":
        check_plot(args.plot)


def check_plot(path, inputs=()):
    """--plot names a file a figure can be written to (support/files.check_figure_path), and nothing else's."""
    check_figure_path(path, inputs)
    if os.path.lexists(path) and not os.path.isfile(path):
        raise UsageError(f"--plot={path} is not a regular file (a device? a pipe?); give a figure file name")


def runs_main(argv):
    parser = OneLineParser(prog="timescale.py", command="experiments/timescale.py", allow_abbrev=False,
                           usage="python experiments/timescale.py RUN_DIR [RUN_DIR ...] [--json] [--plot FILE.png]\n"
                                 "       python experiments/timescale.py toy [--flags]   (the paper's toy; "
                                 "toy --help for its flags)",
                           description="Our runs through the one-third lens: alpha of the loss "
                           "against tau = sum lr, and the logit scale at every checkpoint. The first "
                           "word `toy` runs the paper's teacher-student toy instead.")
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="train.py run directories")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    parser.add_argument("--plot", metavar="FILE.png", help="save the figure (loss and logit scale vs tau)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    first = args.run_dirs[0]
    if not os.path.exists(first) and difflib.get_close_matches(first, ["toy"], cutoff=0.6):
        raise UsageError(f"{first}: no such run directory; did you mean the toy: python experiments/timescale.py toy")
    if args.plot is not None:
        check_plot(args.plot, args.run_dirs)
    results = [fit_log(run_dir) for run_dir in args.run_dirs]   # fail before any long computation
    for run_dir in args.run_dirs:
        runfiles.load_probe(run_dir, fix="the logit scale is measured on it")
    results = [add_logit_scales(result, progress=not args.no_progress) for result in results]
    if args.plot:
        write_figure(args.plot, lambda path: plot_runs(results, path))
    rows = [summary_row(r) for r in results]
    if args.json:
        print(json.dumps(json_safe(rows), indent=1))
        return
    print("\n".join(markdown_table(rows)))
    for row in rows:
        if row["warning"]:
            print(f"{row['name']}: {row['warning']}")
    print("(α: fit of log L = log(c τ^-α + L0) over the last decade of τ = Σ lr, and from t_d; "
          "paper's Pythia α 0.31-0.37)")
    if args.plot:
        print(f"wrote {args.plot}")


def main(argv=None):
    """The command line (`toy` or run directories); returns the exit status (support/cli.py)."""
    argv = sys.argv[1:] if argv is None else argv
    return guarded("timescale.py", toy_main if argv and argv[0] == "toy" else runs_main,
                   argv[1:] if argv and argv[0] == "toy" else argv)
