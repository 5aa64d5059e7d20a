"""
Draw docs/figures/readme.png, the README's first figure: the loss curve of the default run with its
broken-power-law fit and t_d (left), beside D(Δℓ), the destructive interference of one optimizer
step's per-token loss changes, jumping at t_d (right). Nothing is measured here; the numbers come
from the files the README's first command writes. To regenerate, from the repository's top:

    python train.py && python bnsl.py out --json > out/bnsl.json && python zsl.py out
    python docs/figures/make_readme_figure.py out out/bnsl.json

Reads RUN/log.csv (step,loss,...), the JSON list bnsl.py --json prints (of the first curve: b, c0, c1,
d1, f1, the fitted steps first_step..T, t_d, L_d, r_d, supported) and RUN/zsl.json (loss_interference:
D(Δℓ) of one optimizer step at each record step).
Formulas: docs/science.md §1 (the fit) and §2 (D(Δℓ)).
"""
import argparse
import csv
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as ticker  # noqa: E402
import numpy as np  # noqa: E402


def read_log(path):
    """(steps, losses) from a train.py log.csv; losses in nats per token."""
    with open(path, newline="") as f:
        rows = [row for row in csv.DictReader(f) if row.get("step")]
    return np.array([int(r["step"]) for r in rows]), np.array([float(r["loss"]) for r in rows])


def bnsl_loss(fit, t):
    """L(t) = b · t^(−c0) · (1 + (t/d1)^(1/f1))^(−c1·f1), the one-break fit (docs/science.md §1), computed
    in log space, log L = log b − c0 log t − c1 f1 softplus((log t − log d1)/f1), so that a sharp break
    (small f1) does not overflow."""
    softplus = np.logaddexp(0.0, (np.log(t) - np.log(fit["d1"])) / fit["f1"])
    return np.exp(np.log(fit["b"]) - fit["c0"] * np.log(t) - fit["c1"] * fit["f1"] * softplus)


def plain_log_axis(axis, ticks):
    """Log scale labelled with plain numbers at the given ticks (no 6×10⁰-style labels)."""
    axis.set_major_locator(ticker.FixedLocator(ticks))
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


def draw(run_dir, bnsl_json, out_path):
    steps, losses = read_log(os.path.join(run_dir, "log.csv"))
    with open(bnsl_json) as f:
        fit = json.load(f)[0]
    with open(os.path.join(run_dir, "zsl.json")) as f:
        rows = json.load(f)["loss_interference"]
    if not fit.get("supported"):
        sys.exit(f"make_readme_figure.py: error: the fit in {bnsl_json} is not a supported deceleration; "
                 "the figure marks t_d only for one")
    t_d = fit["t_d"]

    figure, (ax_loss, ax_D) = plt.subplots(1, 2, figsize=(10, 3.7))
    # left: the loss curve, the fit, t_d and L_d
    ax_loss.plot(steps, losses, color="0.75", lw=0.6, label="training loss (every step)")
    t = np.geomspace(fit["first_step"], fit["T"], 400)       # the fitted range of steps
    ax_loss.plot(t, bnsl_loss(fit, t), color="C0", lw=2,
                 label=f"broken power law: $r_d$ = {fit['r_d']:.3f} after $t_d$")
    ax_loss.axvline(t_d, color="C3", ls="-.", lw=1.2)
    ax_loss.plot([t_d], [fit["L_d"]], "o", color="C3", ms=5, label=f"$t_d$ = {t_d:.0f}, $L_d$ = {fit['L_d']:.2f}")
    ax_loss.set(xscale="log", yscale="log", xlabel="step", ylabel="loss (nats per token)",
                title="The loss curve bends at $t_d$", xlim=(1, steps[-1] * 1.1))
    plain_log_axis(ax_loss.xaxis, [1, 10, 100, 1000])
    plain_log_axis(ax_loss.yaxis, [1.5, 2, 3, 4, 5])
    ax_loss.legend(fontsize=8, loc="lower left")

    # right: D(Δℓ) of one optimizer step, on the training batch and on the held-out probe
    for key, colour, label in (("probe", "C0", "held-out probe"), ("train", "C1", "the step's own batch")):
        s = [r["step"] for r in rows if r[key] and r[key]["D"] is not None]
        D = [r[key]["D"] for r in rows if r[key] and r[key]["D"] is not None]
        ax_D.plot(s, D, "o-", color=colour, ms=2.5, lw=1, label=label)
    ax_D.axvline(t_d, color="C3", ls="-.", lw=1.2, label=f"$t_d$ = {t_d:.0f}")
    ax_D.set(xscale="log", xlabel="step", ylabel=r"$D(\Delta\ell) = 1 - |\Sigma_i\,\Delta\ell_i| \,/\, \Sigma_i\,|\Delta\ell_i|$",
             ylim=(0, 1.02), title="Per-token loss changes cancel after $t_d$", xlim=(1, steps[-1] * 1.1))
    plain_log_axis(ax_D.xaxis, [1, 10, 100, 1000])
    ax_D.legend(fontsize=8, loc="lower right", title="one optimizer step, measured on", title_fontsize=8)
    for ax in (ax_loss, ax_D):
        ax.grid(alpha=0.3, which="major")
    figure.tight_layout()
    figure.savefig(out_path, dpi=90, pil_kwargs={"optimize": True})
    plt.close(figure)
    return out_path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("run_dir", help="a train.py run directory that zsl.py has analysed")
    parser.add_argument("bnsl_json", help="the output of bnsl.py RUN_DIR --json")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "readme.png"))
    args = parser.parse_args(argv)
    print(draw(args.run_dir, args.bnsl_json, args.out))


if __name__ == "__main__":
    main()
