"""The figures mark what the report does not accept, and say in their titles what they show.
Checked on the returned matplotlib figures (their artists), not by looking at pixels."""
import matplotlib
import matplotlib.colors
import numpy as np

import bnsl
from experiments import error_entropy
from experiments import reproduce
from experiments import timescale_report
import plots

matplotlib.use("Agg")


def is_grey(colour):
    r, g, b, _ = matplotlib.colors.to_rgba(colour)
    return abs(r - g) < 1e-6 and abs(g - b) < 1e-6 and 0.3 < r < 0.7


def hollow(line):
    return str(line.get_markerfacecolor()) == "none"


def fit_of(name, steps, losses):
    return dict(bnsl.fit_bnsl(steps, losses, breaks=1), name=name)


STEPS = np.unique(np.geomspace(10, 5000, 300).round())
BENT = 6.0 * STEPS ** -0.12 * (1 + (STEPS / 300.0) ** (1 / 0.3)) ** (0.09 * 0.3)   # a deceleration at 300
STRAIGHT = 5.0 * STEPS ** -0.1 * np.exp(0.002 * np.sin(np.arange(len(STEPS))))      # a power law: no break


def scaling_row(name, params, L_d, r_d, supported):
    return {"name": name, "params": params, "L_d": L_d, "r_d": r_d, "L_d_err": 0.01, "r_d_err": 0.002,
            "supported": supported}


def test_scaling_draws_a_rejected_fit_hollow_grey_and_unjoined(tmp_path):
    rows = [scaling_row("1x32", 1e4, 4.0, 0.05, True), scaling_row("2x64", 1e5, 3.6, 0.10, True),
            scaling_row("3x96", 3e5, 4.4, -0.02, False)]
    figure = reproduce.plot_scaling(rows, tmp_path / "scaling.png")
    assert (tmp_path / "scaling.png").stat().st_size > 0
    for ax, key in zip(figure.axes, ("L_d", "r_d")):
        rejected = [line for line in ax.get_lines() if hollow(line)]
        assert len(rejected) == 1 and list(rejected[0].get_xdata()) == [3e5]
        assert list(rejected[0].get_ydata()) == [rows[2][key]] and is_grey(rejected[0].get_markeredgecolor())
        assert rejected[0].get_linestyle() == "None"                       # not joined to the judged sizes
        joined = [line for line in ax.get_lines() if line.get_linestyle() == "-"]
        assert [list(line.get_xdata()) for line in joined] == [[1e4, 1e5]]  # the supported sizes only
        assert any("(rejected)" in text.get_text() for text in ax.texts)
    assert "2 of 3 sizes have a supported break" in figure._suptitle.get_text()


def test_loss_fits_grey_a_rejected_fit_and_mark_t_d_only_where_supported(tmp_path):
    fits = [fit_of("bent", STEPS, BENT), fit_of("straight", STEPS, STRAIGHT)]
    assert fits[0]["supported"] and not fits[1]["supported"]
    figure = plots.plot_loss_fits(fits, tmp_path / "fits.png")
    ax = figure.axes[0]
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels[0].startswith("bent: t_d = ") and labels[1].startswith("straight: fit rejected, ")
    rejected = [line for line in ax.get_lines() if line.get_linestyle() == "--" and is_grey(line.get_color())]
    assert len(rejected) == 1 and rejected[0].get_xdata()[0] == STEPS[0]
    t_d_dots = [line for line in ax.get_lines() if line.get_marker() == "o" and not hollow(line)]
    assert len(t_d_dots) == 1 and t_d_dots[0].get_xdata()[0] == fits[0]["t_d"]
    assert "1 of 2 breaks supported" in ax.get_title() and "dotted" in ax.get_title()
    # with no supported break the title does not promise segments that are not drawn
    figure = plots.plot_loss_fits(fits[1:], tmp_path / "fits.png")
    title = figure.axes[0].get_title()
    assert "0 of 1" in title and "dotted" not in title and "dashed: the power law" not in title
    assert not [line for line in figure.axes[0].get_lines() if line.get_linestyle() == ":"]


def interference_summary(name, t_d=None, t_d_rejected=None):
    steps = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    variant = lambda D: {"D": D, "M": 0.1}  # noqa: E731
    return {"run_dir": f"/runs/{name}", "t_d": t_d, "t_d_rejected": t_d_rejected, "fit_start": 8,
            "loss_interference": [{"step": s, "train": variant(0.3), "probe": variant(0.5), "interval": variant(0.6)}
                                  for s in steps],
            "octaves": [(s, 2 * s, 0.2 + 0.002 * s) for s in steps[:-1]]}


def test_loss_interference_shows_the_judged_curve_and_a_rejected_break_as_no_t_d(tmp_path):
    figure = plots.plot_loss_interference([interference_summary("1x32", t_d_rejected=50.0)], tmp_path / "z.png")
    ax_D = figure.axes[0]
    judged = [line for line in ax_D.get_lines() if line.get_linewidth() > 2]
    assert len(judged) == 1 and list(judged[0].get_xdata()) == [1, 2, 4, 8, 16, 32, 64, 128]
    vertical = [line for line in ax_D.get_lines() if len(set(line.get_xdata())) == 1 and len(line.get_xdata()) == 2]
    assert [line.get_xdata()[0] for line in vertical] == [50.0]                     # the rejected break only
    assert vertical[0].get_linestyle() == ":" and is_grey(vertical[0].get_color())
    assert not ax_D.collections or all(len(c.get_segments()) == 0 for c in ax_D.collections
                                       if hasattr(c, "get_segments"))               # no rule levels without t_d
    title = figure._suptitle.get_text()
    assert "not judged" in title and "no size has a supported t_d" in title
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert "break of a rejected fit: not a t_d" in legend and any(t.startswith("before the fit window") for t in legend)
    # with a supported t_d: the dash-dot line, and the rule's two levels over their windows
    figure = plots.plot_loss_interference([interference_summary("1x32", t_d=40.0)], tmp_path / "z.png")
    ax_D = figure.axes[0]
    assert [line.get_xdata()[0] for line in ax_D.get_lines() if line.get_linestyle() == "-."] == [40.0]
    levels = sorted(segment[0][1] for c in ax_D.collections if hasattr(c, "get_segments") for segment in c.get_segments())
    assert levels == [0.5, 0.8]


def test_error_entropy_sizes_labels_every_axis_and_says_how_many_sizes_the_fit_has(tmp_path):
    params = [1e4, 5e4, 3e5]
    rows = [{"name": f"s{k}", "params": p, "step": 64, "CE": 3.2 - 0.01 * k, "EE": 3.1 - 0.01 * k, "SA": 0.06 + 0.001 * k,
             "neg_log_C": 0.05 + 0.001 * k, "EE_share": 0.97} for k, p in enumerate(params)]
    summaries = [{"checkpoints": [{"step": s, "EE_share": 0.9} for s in (1, 8, 64)]} for _ in rows]
    fits = {term: error_entropy.power_law_fit(params, [r[term] for r in rows]) for term in error_entropy.TERMS}
    figure = error_entropy.plot_sizes(summaries, rows, fits, tmp_path / "sizes.png")
    for ax in figure.axes[:4]:
        assert "nats per token" in ax.get_ylabel()
        assert sum(bool(t.get_text()) for t in ax.get_yticklabels()) >= 2, ax.get_title()   # a readable y axis
        assert all("×" not in t.get_text() and "^" not in t.get_text() for t in ax.get_yticklabels())
        assert "over 3 sizes (1 degree of freedom)" in ax.get_title()


def test_timescale_title_names_only_what_is_drawn(tmp_path):
    tau = np.geomspace(1e-3, 1.0, 50)
    fit = {"c": 1.0, "alpha": 0.3, "L0": 2.0, "alpha_err": 0.01, "tau_first": 0.1, "tau_last": 1.0}
    result = {"name": "1x32", "tau": tau, "loss": 1.0 * tau ** -0.3 + 2.0, "fit": fit, "fit_after_t_d": None,
              "tau_d": None, "scale_tau": tau[::10], "logit_scale": tau[::10] ** 0.3, "logit_scale_slope": 0.3}
    figure = timescale_report.plot_runs([result], tmp_path / "t.png")
    title = figure.axes[0].get_title()
    assert "dashed" not in title and "no supported t_d" in title
    assert "nats per token" in figure.axes[0].get_ylabel()
    assert not [line for line in figure.axes[0].get_lines() if line.get_linestyle() in ("--", "-.")]


def test_a_figure_drawn_to_a_temporary_name_carries_one_tag_its_own(tmp_path):
    """write_figure: plot functions save themselves (and so tag the temporary file, whose name holds the
    process id); the final file has one tag, its own name, so its bytes do not depend on the process."""
    import struct

    import matplotlib.pyplot as plt
    from support.files import FIGURE_TAG, is_our_figure, save_figure, write_figure

    def draw(path):
        figure = plt.figure(figsize=(2, 2))
        figure.gca().plot([1, 2, 3])
        save_figure(figure, path)

    def tags(path):
        data, position, found = open(path, "rb").read(), 8, []
        while data[position + 4:position + 8] != b"IDAT":
            length = struct.unpack(">I", data[position:position + 4])[0]
            body = data[position + 8:position + 8 + length]
            if data[position + 4:position + 8] == b"tEXt" and body.startswith(FIGURE_TAG + b"\0"):
                found.append(body[len(FIGURE_TAG) + 1:].decode())
            position += 12 + length
        return found

    write_figure(str(tmp_path / "fig.png"), draw)
    assert tags(tmp_path / "fig.png") == ["fig.png"] and is_our_figure(str(tmp_path / "fig.png"))
