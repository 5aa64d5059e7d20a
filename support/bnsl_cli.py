"""
bnsl.py's command line: read each curve, fit it, judge its break, and print the table (or --json)
and draw the figure (--plot). The fit is in bnsl.py, the verdict in deceleration.py, the figure in
plots.py; this file only puts them together for `python bnsl.py RUN_DIR_OR_CSV ...`.
"""
import json
import os
import sys

import numpy as np

from bnsl import F_MIN, fit_bnsl
from curves import DEFAULT_SMOOTH, DEFAULT_SUBSAMPLE, DEFAULT_TRANSIENT, CurveError, prepare_curve, read_curve
from deceleration import deceleration_verdict
from support.cli import OneLineParser, guarded
from support.files import check_figure_path, json_safe


def plus_minus(result, key):
    """"value±error" to 4 and 2 significant digits; a parameter at its bound has no error."""
    value, error = result.get(key), result.get(key + "_err")
    if value is None:
        return "-"
    if key in result.get("at_bound", ()):
        return f"{value:.4g} (at bound)"
    return f"{value:.4g}" if error is None or not np.isfinite(error) else f"{value:.4g}±{error:.2g}"


def print_rows(header, rows):
    widths = [max(len(row[i]) for row in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def print_table(results):
    """The fits, one row each; then, for results with a verdict, the verdict and its numbers."""
    keys = ["b", "c0"] + [f"{p}{k}" for k in range(1, results[0]["breaks"] + 1) for p in "cfd"]
    print_rows(["name", "n"] + keys + ["L_d", "r_d", "L_hat_T", "L_T", "rsle", "rsle_pl", "note"],
               [[r["name"], str(r["n_points"])] + [plus_minus(r, key) for key in keys]
                + [plus_minus(r, "L_d"), plus_minus(r, "r_d"), f"{r['L_hat_T']:.4g}",
                   f"{r['L_T']:.4g}", f"{r['rsle']:.4f}", f"{r['rsle_power_law']:.4f}",
                   "ok" if r["supported"] else "UNSUPPORTED: " + r["warning"]] for r in results])
    print(f"(d1 = t_d; errors are 1 sigma from sigma^2 (J^T J)^-1; at bound: f_k <= {2 * F_MIN:g}, "
          f"a corner sharper than the fit resolves, whose error means nothing)")
    judged = [r for r in results if "verdict" in r]
    if not judged:
        return
    print("\nverdict (deceleration.py, 1-break fits): its t_d, with an error that includes the "
          "smoothing's shift; t(tau_d): the break in dynamic time, as a step; cut c: t_d of the "
          "run cut at c T")
    print_rows(["name", "verdict", "t_d", "smoothing", "t(tau_d)", "cut 3/4", "cut 1/2", "why"],
               [verdict_row(r) for r in judged])
    for r in judged:
        if r["notes"]:
            print(f"{r['name']}: " + "; ".join(r["notes"]))


def verdict_row(r):
    """The verdict table's cells for one judge_curve result."""
    t_d = "-" if r["verdict_t_d"] is None else f"{r['verdict_t_d']:.4g}±{r['t_d_err_total']:.2g}"
    shift = f"{r['smoothing_shift']['t_d']:+.3g}" if r["smoothing_shift"] else "-"
    if r["tau_fit"] is None:
        in_tau = "steps only"
    else:
        in_tau = f"{r['tau_d_step']:.4g}" if r["tau_fit"]["supported"] else "none"
    cuts = [f"{cut['t_d']:.4g}" if cut["supported"] else "none" for cut in r["cuts"]]
    return [r["name"], r["verdict"], t_d, shift, in_tau, *cuts, r["verdict_reason"]]


def json_ready(value):
    """json_safe throughout dicts and lists, leaving out the fitted points ("steps", "losses")."""
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items() if key not in ("steps", "losses")}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    return json_safe(value)


def judge_curve(path, args):
    """One curve as the command line reports it: the fit_bnsl result (with --breaks breaks) and
    the verdict of deceleration.py (1-break fits) with its numbers. Raises CurveError."""
    curve = read_curve(path, args.step_column, args.loss_column,
                       None if args.lr_column == "none" else args.lr_column)
    prep = {"smooth": args.smooth, "subsample": args.subsample, "transient": args.transient}
    judged = deceleration_verdict(curve["steps"], curve["losses"], curve["lr"], **prep)
    fit = judged["fit"]
    if args.breaks != 1:
        fit = fit_bnsl(*prepare_curve(curve["steps"], curve["losses"], **prep), breaks=args.breaks)
    name = os.path.basename(os.path.normpath(path))
    return {"name": name[:-4] if name.endswith(".csv") else name, **fit,
            "verdict": judged["verdict"], "verdict_reason": judged["reason"],
            "verdict_t_d": judged["t_d"],
            "t_d_err_total": judged["t_d_err_total"], "smoothing_shift": judged["smoothing_shift"],
            "tau_fit": judged["tau_fit"], "tau_d_step": judged["tau_d_step"],
            "cuts": judged["cuts"], "notes": curve["notes"] + judged["notes"]}


def main(argv=None):
    """python bnsl.py ...: returns the exit status (support/cli.py: one line for bad input, 1 for `| head`)."""
    return guarded("bnsl.py", run_command, argv)


def run_command(argv):
    parser = OneLineParser(prog="bnsl.py", allow_abbrev=False,
                           description="Fit a broken neural scaling law to loss curves, report "
                           "loss deceleration: t_d, L_d = b t_d^-c0, r_d = c0 + c1, and judge "
                           "whether the break is a deceleration, the learning-rate schedule, or "
                           "the end of the run.")
    parser.add_argument("paths", nargs="+", metavar="RUN_DIR_OR_CSV",
                        help="train.py run directories (log.csv) or CSV files with a header row")
    parser.add_argument("--breaks", type=int, choices=[0, 1, 2], default=1,
                        help="breaks in the fit reported first (default 1; the verdict uses 1)")
    parser.add_argument("--smooth", choices=["lma", "none"], default=DEFAULT_SMOOTH,
                        help="lma: loss at s = mean over steps floor(s/1.2)..s (default lma)")
    parser.add_argument("--subsample", choices=["log", "none"], default=DEFAULT_SUBSAMPLE,
                        help="log: one logged row per bin of 1 step <100, 10 <1e3, 100 <1e4, "
                        "1000 beyond, + the last (default log)")
    parser.add_argument("--transient", type=int, default=DEFAULT_TRANSIENT, metavar="N",
                        help=f"drop steps <= N (default {DEFAULT_TRANSIENT}: about 5%% of our "
                        "100-200 step warm-up, as the paper's 100 was of its 2000; the paper's "
                        "published curves need --smooth=none --subsample=none --transient=100)")
    parser.add_argument("--step_column", default="step", metavar="NAME",
                        help="the CSV column of steps (default step)")
    parser.add_argument("--loss_column", default="loss", metavar="NAME",
                        help="the CSV column of losses (default loss; e.g. val/loss of a tracker)")
    parser.add_argument("--lr_column", default="lr", metavar="NAME",
                        help="the CSV column of learning rates, for the fit in dynamic time "
                        "(default lr; none: fit in steps only)")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    parser.add_argument("--plot", metavar="FILE.png", help="save a log-log figure of the fits")
    args = parser.parse_args(argv)
    if args.transient < 0:
        parser.error(f"argument --transient: must be >= 0, got {args.transient}")

    results = []
    if args.plot is not None:   # before any fitting
        check_figure_path(args.plot, args.paths)
    for path in args.paths:
        try:
            results.append(judge_curve(path, args))
        except CurveError as error:
            raise CurveError(error if str(error).startswith(path) else f"{path}: {error}") from None
    if args.plot is not None:
        from plots import plot_fits  # (matplotlib loads only when a figure is asked for)
        plot_fits(results, args.plot)

    if args.json:
        print(json.dumps(json_ready(results), indent=1))
    else:
        print_table(results)
    if args.plot is not None:   # with --json, stdout holds the JSON alone
        print(f"wrote {args.plot}", file=sys.stderr if args.json else sys.stdout)
    sys.stdout.flush()
