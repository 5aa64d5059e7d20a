"""
Several seeds of the same experiment, seen together.

    python seeds.py report_s1337 report_s2 report_s3       # reproduce.py outputs, one seed each
    python seeds.py report/seed_* --out_dir=report_seeds

reproduce.py --seeds=1337,2,3 calls this on its own per-seed directories; given by hand, it
reads any reproduce.py output directories of the same experiment (summary.json and runs/).

THE RULE FOR SEVERAL SEEDS (written before any run of several seeds; not tuned afterwards).
Each seed's finding is judged by reproduce.py's rule: it holds, does not hold, or was not
judged. Across N seeds, with k = the seeds on which it holds and m = those on which it does not:

    holds          if k >= floor(N/2) + 1        a strict majority: 2 of 2, 2 of 3, 3 of 4, 3 of 5
    does not hold  if m >= N - floor(N/2)        no majority is possible any more
    not judged     otherwise                      too many seeds could not be judged to decide

Every finding reads "holds on k of N seeds", with each seed's numbers beside it.

Per size, t_d, L_d and r_d are shown as mean ± sample standard deviation over the seeds whose break
is supported (their count in brackets), and the zero-sum numbers over the seeds that measured them.

    write(out_dir, seed_dirs, command=None) -> {"written": [paths], "conclusion": [lines]}
        report.md, summary.json and seeds.png (the curves of every seed overlaid) in out_dir
"""
import argparse
import json
import math
import os
import statistics
import sys

import numpy as np

if __package__ in (None, ""):  # run as `python experiments/NAME.py`: import from the repository root,
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # as `python -m experiments.NAME` does

from support.cli import OneLineParser, UsageError, guarded
from support.files import write_json


HOLDS, FAILS, NOT_JUDGED = "holds", "does not hold", "not judged"


def majority(states):
    """The verdict across seeds: (state, k, N) by the rule in the module docstring.
    states: one of HOLDS / FAILS / NOT_JUDGED per seed. Raises ValueError on an empty list."""
    n = len(states)
    if n == 0:
        raise ValueError("no seeds to judge")
    k, m = states.count(HOLDS), states.count(FAILS)
    needed = n // 2 + 1                       # a strict majority of n
    if k >= needed:
        return HOLDS, k, n
    if m >= n - n // 2:                       # then k <= n // 2 whatever the rest would have been
        return FAILS, k, n
    return NOT_JUDGED, k, n


# ---------------------------------------------------------------------------------------------
# Reading the seeds' outputs

SeedsError = UsageError  # outputs that cannot be seen together: reported as one line, with the fix


# flags that may differ between the seeds of one experiment
NOT_THE_EXPERIMENT = {"seed", "seeds", "out_dir", "jobs", "device"}


def state_of(finding):
    """A finding's state; a summary.json written before the three states has only holds (bool)."""
    return finding.get("state") or {True: HOLDS, False: FAILS, None: NOT_JUDGED}[finding.get("holds")]


def load(seed_dir):
    """One seed's summary.json, with each size's run directory and curves. Raises SeedsError."""
    path = os.path.join(seed_dir, "summary.json")
    fix = "give finished one-seed reproduce.py --out_dirs, or the seed_N folders of a several-seed one"
    if not os.path.isdir(seed_dir):
        raise SeedsError(f"{seed_dir}: no such directory; {fix}")
    if not os.path.isfile(path):
        raise SeedsError(f"{seed_dir} holds no summary.json, so it is not a finished reproduce.py run; {fix}")
    try:
        with open(path, encoding="utf-8") as f:
            summary = json.load(f)
        summary["sizes"], summary["findings"], summary["args"]["seed"]   # noqa: B018 (the keys used below)
    except (OSError, ValueError, KeyError, TypeError) as e:
        what = e.strerror if isinstance(e, OSError) and e.strerror else f"{type(e).__name__}: {str(e)[:80]}"
        raise SeedsError(f"{path}: not a reproduce.py summary ({what}); {fix}") from None
    for row in summary["sizes"]:
        run_dir = os.path.join(seed_dir, "runs", row["name"])
        row["curve"] = _smoothed_curve(run_dir)
        row["gradient_rows"] = _gradient_rows(run_dir)
    summary["dir"] = seed_dir
    return summary


def _smoothed_curve(run_dir):
    """(steps, smoothed loss) of a run's log.csv, as bnsl.py smooths it for the fit; None if unreadable."""
    import bnsl
    try:
        steps, losses = bnsl.load_curve(run_dir)
    except (bnsl.CurveError, OSError):
        return None
    return steps, bnsl.log_moving_average(steps, losses)


def _gradient_rows(run_dir):
    try:
        with open(os.path.join(run_dir, "zsl.json"), encoding="utf-8") as f:
            return json.load(f)["gradient_interference"]
    except (OSError, ValueError, KeyError):
        return []


def check_same_experiment(summaries):
    """The seeds must be one experiment: the same sizes and flags but the seed, distinct seeds."""
    first = summaries[0]
    for other in summaries[1:]:
        if [r["name"] for r in other["sizes"]] != [r["name"] for r in first["sizes"]]:
            raise SeedsError(f"{other['dir']} has sizes {', '.join(r['name'] for r in other['sizes'])}, "
                             f"{first['dir']} {', '.join(r['name'] for r in first['sizes'])}: give runs of one experiment")
        for key in sorted(set(first["args"]) | set(other["args"])):
            if key not in NOT_THE_EXPERIMENT and first["args"].get(key) != other["args"].get(key):
                raise SeedsError(f"{other['dir']} was run with {key}={other['args'].get(key)!r}, {first['dir']} "
                                 f"with {first['args'].get(key)!r}: give runs of one experiment")
    seeds = [s["args"]["seed"] for s in summaries]
    if len(set(seeds)) < len(seeds):
        raise SeedsError(f"seed {max(seeds, key=seeds.count)} is given twice; give each seed's output once")


# ---------------------------------------------------------------------------------------------
# Across seeds: the findings by the rule, the numbers as mean ± spread

def findings_across(summaries):
    """Per finding: {finding, rule, state, k, n, per_seed: [{seed, state, why, numbers}]}."""
    out = []
    for index, finding in enumerate(summaries[0]["findings"]):
        per_seed = [{"seed": s["args"]["seed"], "state": state_of(s["findings"][index]),
                     "why": s["findings"][index].get("why"), "numbers": s["findings"][index]["numbers"]}
                    for s in summaries]
        state, k, n = majority([p["state"] for p in per_seed])
        out.append({"finding": finding["finding"], "rule": finding["rule"], "state": state, "k": k, "n": n,
                    "per_seed": per_seed})
    return out


def mean_spread(values):
    """(mean, sample standard deviation, count) of the values that exist; None where undefined."""
    values = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not values:
        return None, None, 0
    spread = statistics.stdev(values) if len(values) > 1 else None
    return statistics.fmean(values), spread, len(values)


# the numbers summarised per size: t_d, L_d, r_d only from supported fits (a rejected fit's are not a deceleration's)
ACROSS = (("t_d", "t_d", 0), ("L_d", "L_d", 3), ("r_d", "r_d", 4), ("D_oct_before", "D(Δℓ) Δt = t before", 2),
          ("D_oct_after", "D(Δℓ) Δt = t after", 2), ("D_grad_after", "D(∇θℓ) after 2 t_d", 3),
          ("excess_before", "excess before", 4), ("excess_after", "excess after", 4))


def sizes_across(summaries):
    """Per size: {name, params, supported: count, key: (mean, sd, count) for each of ACROSS}."""
    rows = []
    for index, first in enumerate(summaries[0]["sizes"]):
        per_seed = [s["sizes"][index] for s in summaries]
        row = {"name": first["name"], "params": first["params"], "supported": sum(bool(r["supported"]) for r in per_seed)}
        for key, _, _ in ACROSS:
            row[key] = mean_spread([r.get(key) if r["supported"] or key not in ("L_d", "r_d") else None
                                    for r in per_seed])
        rows.append(row)
    return rows


def _cell(stat, digits):
    mean, spread, count = stat
    if mean is None:
        return "n/a"
    return f"{mean:.{digits}f}" + (f" ± {spread:.{digits}f}" if spread is not None else "") + f" ({count})"


# ---------------------------------------------------------------------------------------------
# The report and the figure

def conclusion(findings, summaries):
    """What reproduced across the seeds, what did not, what was not judged, and what it means (Markdown)."""
    n = len(summaries)
    lines = []
    for state, title in ((HOLDS, "Reproduced"), (FAILS, "Not reproduced"), (NOT_JUDGED, "Not judged")):
        chosen = [f for f in findings if f["state"] == state]
        if chosen:
            lines.append(f"**{title}** (by the majority rule over {n} seeds): "
                         + "; ".join(f"{f['finding']} (holds on {f['k']} of {n})" for f in chosen) + ".")
    rejected = {}
    for s in summaries:
        for row in s["sizes"]:
            if not row["supported"]:
                rejected.setdefault(row["name"], []).append(str(s["args"]["seed"]))
    if all(f["state"] == HOLDS for f in findings):
        meaning = "the paper's account reproduces on a majority of the seeds."
    elif rejected:
        meaning = ("the fit rejected the break of " + "; ".join(f"{name} on seed{'s' if len(seeds) > 1 else ''} "
                                                               f"{', '.join(seeds)}" for name, seeds in rejected.items())
                   + ": where a loss curve shows no supported deceleration, the findings measured at t_d cannot be "
                   "tested, so a finding not judged says nothing for or against the paper.")
    else:
        meaning = "every seed's loss decelerates by the stated rules; the findings that do not hold are listed above."
    return lines + [f"**What this means:** {meaning}"]


def report_lines(findings, sizes, summaries, command, out_dir="."):
    seeds = [s["args"]["seed"] for s in summaries]
    lines = [f"# {len(seeds)} seeds together: {', '.join(map(str, seeds))}", "", "## Conclusion", ""]
    lines += [line for item in conclusion(findings, summaries) for line in (item, "")]
    if command:
        lines += [f"`{command}`", ""]
    lines += ["The rule across seeds (written before any run of several seeds): a finding holds if it holds on a "
              "strict majority of the N seeds (k >= N//2 + 1); it does not hold if it fails on so many that no "
              "majority is possible; otherwise it is not judged. Each seed is judged by reproduce.py's rule.", "",
              "## Findings", "", "| finding | across seeds | " + " | ".join(f"seed {s}" for s in seeds) + " |",
              "|---|---|" + "---|" * len(seeds)]
    for f in findings:
        cells = [f"{p['state']}{': ' + p['why'] if p['why'] else ''} — {p['numbers']}" for p in f["per_seed"]]
        lines.append(f"| {f['finding']} | **{f['state']}**: holds on {f['k']} of {f['n']} seeds | " + " | ".join(cells) + " |")
    lines += ["", "## Per size: mean ± sample standard deviation across seeds (count of seeds)", "",
              "t_d, L_d and r_d over the seeds whose break is supported; the zero-sum numbers over those that "
              "measured them (they need t_d).", "",
              "| size | params | supported breaks | " + " | ".join(label for _, label, _ in ACROSS) + " |",
              "|---|---|---|" + "---|" * len(ACROSS)]
    for row in sizes:
        lines.append(f"| {row['name']} | {row['params']:,} | {row['supported']} of {len(seeds)} | "
                     + " | ".join(_cell(row[key], digits) for key, _, digits in ACROSS) + " |")
    lines += ["", "## Figure", "", "![every seed's curves overlaid](seeds.png)", "", "## Each seed's report", ""]
    lines += [f"- [seed {s['args']['seed']}]({os.path.relpath(os.path.join(s['dir'], 'report.md'), out_dir)})"
              for s in summaries]
    return lines


def plot_seeds(summaries, path):
    """Every seed's curves overlaid (colour: size, line style: seed): the smoothed training loss with
    t_d (dots, supported fits only), D(Δℓ) from record s to 2s, D(∇θℓ) and the excess alignment at the
    checkpoints; and L_d, r_d against size (filled: supported, hollow grey: rejected; black: mean ± sd
    over the supported). Writes path; returns the (closed) figure."""
    import plots
    from matplotlib.lines import Line2D
    plt = plots._pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    (ax_loss, ax_D, ax_G), (ax_x, ax_L, ax_r) = axes
    styles = ["-", "--", ":", "-."]
    for k, s in enumerate(summaries):
        style = styles[k % len(styles)]
        for index, row in enumerate(s["sizes"]):
            colour = f"C{index % 10}"
            if row["curve"] is not None:
                ax_loss.plot(*row["curve"], ls=style, color=colour, lw=1)
                if row["t_d"]:
                    ax_loss.plot([row["t_d"]], [np.interp(row["t_d"], *row["curve"])], "o", color=colour, ms=5)
            octaves = row.get("octaves") or []
            ax_D.plot([o[0] for o in octaves], [np.nan if o[2] is None else o[2] for o in octaves], ls=style, color=colour)
            grads = row["gradient_rows"]
            ax_G.plot([g["step"] for g in grads], [np.nan if g.get("D_grad") is None else g["D_grad"] for g in grads],
                      ls=style, color=colour, marker="o", ms=2)
            ax_x.plot([g["step"] for g in grads], [np.nan if g.get("excess_mc") is None else g["excess_mc"] for g in grads],
                      ls=style, color=colour, marker="o", ms=2)
    for ax, key, label in ((ax_L, "L_d", "L_d (nats per token)"), (ax_r, "r_d", "r_d")):
        _plot_across_seeds(ax, summaries, key)
        ax.set(xscale="log", xlabel="non-embedding parameters", ylabel=label,
               title=f"{key} against size (hollow grey: rejected fits)")
        ax.margins(x=0.12)   # the smallest and largest size off the axes' edges
        plots.plain_log_axis(ax.xaxis)
    ax_loss.set(xscale="log", yscale="log", xlabel="step", ylabel="training loss (nats per token, smoothed)",
                title="the loss; dot: t_d of a supported fit")
    ax_D.set(xscale="log", xlabel="record step s", ylabel="D(Δℓ), probe, s → 2s", ylim=(0, 1),
             title="D(Δℓ), Δt = t (finding 4)")
    ax_G.set(xscale="log", xlabel="checkpoint step", ylabel="D(∇θℓ)", title="D(∇θℓ) (finding 5)")
    ax_x.axhline(0, color="grey", lw=0.8)
    ax_x.set(xscale="log", xlabel="checkpoint step", ylabel="D_null − D(∇θℓ), Monte Carlo",
             title="excess alignment (finding 6)")
    for ax in (ax_loss, ax_D, ax_G, ax_x):
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "log":
                plots.plain_log_axis(axis)
    handles = [Line2D([], [], color=f"C{i % 10}", lw=2, label=row["name"]) for i, row in enumerate(summaries[0]["sizes"])]
    handles += [Line2D([], [], color="k", ls=styles[k % len(styles)], label=f"seed {s['args']['seed']}")
                for k, s in enumerate(summaries)]
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle(f"{len(summaries)} seeds overlaid (colour: size; line style: seed)", fontsize=10)
    plots.save(fig, path)
    return fig


def _plot_across_seeds(ax, summaries, key):
    """Each seed's value per size (filled: supported, hollow grey: rejected), and the mean ± sd of the supported."""
    for index in range(len(summaries[0]["sizes"])):
        rows = [s["sizes"][index] for s in summaries]
        params = rows[0]["params"]
        for row in rows:
            if row.get(key) is not None and math.isfinite(row[key]):
                ax.plot([params], [row[key]], "o", color=f"C{index % 10}" if row["supported"] else "none",
                        mec=f"C{index % 10}" if row["supported"] else "0.55", ms=5, alpha=0.8)
        mean, spread, count = mean_spread([row[key] if row["supported"] else None for row in rows])
        if mean is not None:
            ax.errorbar([params], [mean], yerr=[spread or 0.0], fmt="_", color="k", ms=14, capsize=4)


def write(out_dir, seed_dirs, command=None):
    """The seeds seen together, into out_dir: report.md, summary.json, seeds.png. Raises SeedsError."""
    if len(seed_dirs) < 2:
        raise SeedsError("give at least two seeds' outputs to see them together")
    summaries = [load(d) for d in seed_dirs]
    check_same_experiment(summaries)
    findings, sizes = findings_across(summaries), sizes_across(summaries)
    os.makedirs(out_dir, exist_ok=True)
    written = [os.path.join(out_dir, name) for name in ("seeds.png", "report.md", "summary.json")]
    plot_seeds(summaries, written[0])
    text = "\n".join(report_lines(findings, sizes, summaries, command, out_dir))
    with open(written[1] + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(written[1] + ".tmp", written[1])
    lines = conclusion(findings, summaries)
    data = {"seeds": [s["args"]["seed"] for s in summaries], "seed_dirs": list(seed_dirs), "findings": findings,
            "rule": "holds if it holds on k >= N//2 + 1 seeds; does not hold if it fails on >= N - N//2; else not judged",
            "sizes": [{k: (dict(zip(("mean", "sd", "count"), v)) if isinstance(v, tuple) else v) for k, v in row.items()}
                      for row in sizes], "conclusion": lines}
    write_json(written[2], data)
    return {"written": written, "conclusion": lines}


def main(argv=None):
    """The command line; returns the exit status (support/cli.py)."""
    return guarded("seeds.py", run_command, sys.argv[1:] if argv is None else argv)


def run_command(argv):
    parser = OneLineParser(prog="seeds.py", command="experiments/seeds.py",
                           allow_abbrev=False, description="Several seeds of one reproduce.py experiment, "
                                     "seen together: each finding as 'holds on k of N seeds', the numbers as mean ± sd.")
    parser.add_argument("seed_dirs", nargs="+", metavar="DIR", help="reproduce.py --out_dir of each seed")
    parser.add_argument("--out_dir", default="seeds", help="where report.md, summary.json and seeds.png go")
    args = parser.parse_args(argv)
    result = write(args.out_dir, args.seed_dirs, command="python experiments/seeds.py " + " ".join(argv))
    for path in result["written"]:
        print(f"wrote {path}")
    print("\n" + "\n".join(line.replace("**", "") for line in result["conclusion"]))


if __name__ == "__main__":
    sys.exit(main())
