"""The comparisons' figures (:mod:`.comparisons` selects the runs and holds the
numbers), written by ``tools/plot_logs.py logs/`` beside ``RESULTS.md``:

* ``depth_trend.png``: against ResNet depth, BiPattern top-1 (and ours with
  the BatchNorm statistics re-estimated, step 2b) and the gap Full - Refined
  in points (and ours for the STE model with re-estimated BatchNorm
  statistics), the release README's as one marker style (grey
  squares, dashed), ours as another (circles, triangles). A depth whose
  step is unfinished or not run yet is left out of that series and named
  under the figure, so that no point is a number still moving.
* ``small_nets.png``: size as stored (MB, log scale) against CIFAR-10 top-1
  for every net of the small-network table with a result (hollow and
  labelled when its step is unfinished), the depth trend's finished ResNets
  as reference squares (an unfinished reference is a number still moving);
  beside it the paper's ImageNet points (size against ImageNet top-1), so
  that the two shapes can be compared.

A figure with nothing to plot is not written (the tool says so in one line).
"""
import os

from ..compress.model_summary import net_costs
from ..errors import UserError
from ..fileio import atomic_path
from .comparisons import (DEPTH_FIGURE, SMALL_FIGURE, SMALL_ROWS, _top1, finished, gap, groups,
                          small_points)
from .paper import PAPER_LABEL, PAPER_SMALL, RELEASE_CIFAR10, RELEASE_LABEL
from .results import TITLES, readable

RELEASE_STYLE = dict(color="0.45", marker="s", ls="--", ms=7)
OURS_STYLE = dict(color="C0", marker="o", ls="-", ms=8)
OURS_STE_STYLE = dict(color="C3", marker="^", ls="-", ms=8)
OURS_BN_STYLE = dict(color="C1", marker="D", ls="-", ms=7)
#: Where the value labels go: the release's above its points, ours below.
_ABOVE, _BELOW = (5, 6), (5, -13)


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path, dpi):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
        readable(tmp)


# ------------------------------------------------------------ depth trend

def depth_series(group):
    """{series: [(depth, value)]} of the depth figure (top-1 as a fraction,
    gaps in points) and the notes on the depths left out."""
    s = {"release_bipattern": [(d, r.bipattern[0]) for d, r in sorted(RELEASE_CIFAR10.items())],
         "release_gap": [(d, 100 * (r.full[0] - r.refined[0]))
                         for d, r in sorted(RELEASE_CIFAR10.items())],
         "bipattern": [], "bipattern_bn": [], "gap_refined": [], "gap_ste_bn": []}
    notes = []
    for depth, exp in group.members.items():
        for key in ("bipattern", "bipattern_bn"):
            b = exp.results.get(key)
            if _top1(b) is not None and finished(b):
                s[key].append((depth, _top1(b)))
        for key, series in (("refined", "gap_refined"), ("ste_bn", "gap_ste_bn")):
            g = gap(exp, key)
            if g is not None and g.finished:
                s[series].append((depth, g.points))
        why = []
        for key in ("full", "bipattern", "refined", "ste_bn"):
            r = exp.results.get(key)
            if r is not None and not finished(r):
                at = ""
                if r.log.kind == "train":      # a step just begun has no test yet
                    at = (", not tested yet" if r.acc.iteration is None
                          else f" at iteration {r.acc.iteration}")
                why.append(f"{TITLES[key]} unfinished{at}")
            elif r is None and key != "ste_bn":
                why.append(f"no {TITLES[key]} yet")
        if why:
            notes.append(f"not plotted for ResNet-{depth}: {', '.join(why)}")
    return s, notes


def plot_depth_trend(group, path, dpi=120):
    """Write depth_trend.png; UserError when none of our depths has a point."""
    s, notes = depth_series(group)
    if not (s["bipattern"] or s["bipattern_bn"] or s["gap_refined"] or s["gap_ste_bn"]):
        raise UserError(path, "no finished ResNet step to plot (" + "; ".join(notes) + ")")
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 5))
    iters = group.schedule.get("iters")
    ours = f"this project ({iters:,} iterations)" if iters else "this project"
    rel = f"{RELEASE_LABEL} (80,000 iterations)"
    _line(ax1, s["release_bipattern"], rel, RELEASE_STYLE, "{:.3f}", _ABOVE)
    _line(ax1, s["bipattern"], ours, OURS_STYLE, "{:.3f}", _BELOW)
    _line(ax1, s["bipattern_bn"], f"{ours}, {TITLES['bipattern_bn']}", OURS_BN_STYLE,
          "{:.3f}", _ABOVE)
    ax1.set_ylim(0, 1)
    ax1.set_ylabel("BiPattern top-1 (right after binarization)")
    ax1.set_title("BiPattern top-1")
    _line(ax2, s["release_gap"], f"{RELEASE_LABEL}: Full - Refined", RELEASE_STYLE, "{:.2f}",
          _ABOVE)
    _line(ax2, s["gap_refined"], "this project: Full - Refined", OURS_STYLE, "{:.2f}", _BELOW)
    _line(ax2, s["gap_ste_bn"], f"this project: Full - {TITLES['ste_bn']}", OURS_STE_STYLE,
          "{:.2f}", _BELOW)
    ax2.axhline(0, color="0.7", lw=0.8)
    ax2.set_ylabel("top-1 gap to full precision (points)")
    ax2.set_title("What binarization costs after training")
    depths = sorted({d for v in s.values() for d, _ in v})
    for ax in (ax1, ax2):
        ax.set_xticks(depths)
        ax.set_xticklabels([f"ResNet-{d}" for d in depths])
        ax.set_xlabel("depth")
        ax.margins(x=0.08, y=0.1)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle("Pattern binarization against depth, CIFAR-10")
    foot = "; ".join(notes)
    if foot:
        fig.text(0.01, 0.01, foot, fontsize=8, color="0.35")
    fig.tight_layout(rect=(0, 0.04 if foot else 0, 1, 1))
    _save(fig, path, dpi)
    plt.close(fig)
    return path


def _line(ax, points, label, style, fmt, where):
    if not points:
        return
    xs, ys = zip(*points)
    ax.plot(xs, ys, label=label, lw=1.3, **style)
    for x, y in points:
        ax.annotate(fmt.format(y), (x, y), xytext=where, textcoords="offset points",
                    fontsize=7, color=style["color"])


# ------------------------------------------------------------ small nets

def plot_small_nets(small, depths, path, dpi=120):
    """Write small_nets.png; UserError when no small net has a top-1."""
    points = small_points(small, depths)
    if not any(_top1(p.result) is not None for p in points if not p.reference):
        raise UserError(path, "no small net has a test result yet")
    costs = net_costs(tuple(dict.fromkeys(p.net for p in points)))
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5.5))
    colors = {r.label: f"C{i}" for i, r in enumerate(SMALL_ROWS)}
    paper_colors = {}
    for r in SMALL_ROWS:     # a net has one colour in both panels
        paper_colors.setdefault(r.paper, colors[r.label])
    ours = []
    for p in points:
        top1, c = _top1(p.result), costs.get(p.net)
        done = finished(p.result)
        if top1 is None or c is None or (p.reference and not done):
            continue
        color = "0.4" if p.reference else colors[p.label]
        label = p.label + ("" if done else " (unfinished)")
        ax1.plot([c.nbytes / 1e6], [top1], linestyle="none",
                 marker="s" if p.reference else "o", ms=9, color=color,
                 mfc=color if done else "none", label=label)
        ours.append((c.nbytes / 1e6, top1, label, color))
    ax1.set_ylabel("CIFAR-10 top-1 (this project)")
    ax1.set_title("This project: CIFAR-10 forms (squares: references)")
    theirs = [(r.size_mb, r.top1_pct, name, paper_colors.get(name, "0.3"))
              for name, r in PAPER_SMALL.items()]
    for x, y, _, color in theirs:
        ax2.plot([x], [y], linestyle="none", marker="D", ms=8, color=color)
    ax2.set_ylabel("ImageNet top-1 (%)")
    ax2.set_title(f"The paper's numbers ({PAPER_LABEL})")
    for ax, xs in ((ax1, [x for x, *_ in ours]), (ax2, [x for x, *_ in theirs])):
        _log_size_axis(ax, xs)
        ax.grid(True, which="both", alpha=0.3)
        ax.margins(y=0.12)
    fig.suptitle("Small networks: size as stored against top-1")
    fig.tight_layout()
    _labels(ax1, ours)
    _labels(ax2, theirs)
    _save(fig, path, dpi)
    plt.close(fig)
    return path


#: Where a label may go, in points from its point, in the order tried: up-right,
#: then below, then further up and down.
LABEL_OFFSETS = ((6, 4), (6, -12), (6, 14), (6, -22), (6, 24), (6, -32), (6, 34))
LABEL_SIZE = 8


def _labels(ax, points):
    """Label each (x, y, text, colour) point at the first of LABEL_OFFSETS
    where its text covers no earlier label and no point (in display
    coordinates, so call it once the axes' limits and the layout are set):
    two nets at one size and close top-1s (SEP-Net-B fixed and STE) once
    printed their labels over each other."""
    ax.get_xlim(), ax.get_ylim()            # settle autoscaling before transforming
    px = ax.figure.dpi / 72
    marks = [tuple(ax.transData.transform((x, y))) for x, y, *_ in points]
    half = 5 * px                            # a marker's half width (ms 9-10)
    taken = [(mx - half, my - half, mx + half, my + half) for mx, my in marks]
    for (x, y, text, color), (mx, my) in sorted(zip(points, marks), key=lambda t: t[0][:2]):
        w, h = 0.6 * LABEL_SIZE * len(text) * px, LABEL_SIZE * px
        boxes = [(mx + dx * px, my + dy * px - 0.25 * h, mx + dx * px + w, my + dy * px + h)
                 for dx, dy in LABEL_OFFSETS]
        i = next((i for i, b in enumerate(boxes) if not any(_overlap(b, t) for t in taken)), 0)
        ax.annotate(text, (x, y), xytext=LABEL_OFFSETS[i], textcoords="offset points",
                    fontsize=LABEL_SIZE, color=color)
        taken.append(boxes[i])


def _overlap(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _log_size_axis(ax, xs):
    """A log MB axis with plain tick labels (0.5, 1, 2, 5)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter
    ax.set_xscale("log")
    lo, hi = min(xs) / 1.6, max(xs) * 1.9
    ax.set_xlim(lo, hi)
    ticks = [t * 10 ** e for e in range(-2, 4) for t in (1, 2, 3, 5) if lo <= t * 10 ** e <= hi]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("size as stored (MB, log scale)")


# ------------------------------------------------------------ both

def write_figures(exps, root, dpi=120, say=print):
    """Write the figures that have something to plot under `root`; `say`
    gets one line for each figure not written. Returns the paths written."""
    written = []
    depths, small = groups(exps, root, say, DEPTH_FIGURE, SMALL_FIGURE)
    if depths is not None:
        try:
            written.append(plot_depth_trend(depths, os.path.join(root, DEPTH_FIGURE), dpi))
        except UserError as e:
            say(f"no {DEPTH_FIGURE}: {e.problem}")
    if small is not None:
        try:
            written.append(plot_small_nets(small, depths, os.path.join(root, SMALL_FIGURE), dpi))
        except UserError as e:
            say(f"no {SMALL_FIGURE}: {e.problem}")
    return written
