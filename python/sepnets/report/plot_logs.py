"""``tools/plot_logs.py``: figures of an experiment's steps on one axis, so that what the paper's
procedure does to a network can be seen at a glance: the accuracy lost when
the k x k filters are binarized (BiPattern) and how much fine-tuning with fixed
patterns recovers (Refined).

Step 3 (and the optional STE step 4) start where step 1 ended: their
iterations are offset by step 1's last iteration, their seconds by step 1's
wall-clock time plus the BiPattern evaluations' time. The BiPattern
evaluations are markers at that boundary (the one in the table larger).

Given the logs root, the comparisons' figures are written beside RESULTS.md
too (:mod:`.comparison_figures`: depth_trend.png, small_nets.png).
"""
import math
import os
import sys

from ..errors import UserError
from ..fileio import atomic_path
from ..pipeline.steps import STEPS
from .results import load_folders, log_files, readable, warn

FIGURE_NAME = "training_curves.png"
#: Colour and legend of each step, from the step table.
_STYLE = {st.key: (st.color, st.legend) for st in STEPS}
#: Training steps, drawn as curves (the first is the base the others follow).
_CURVES = tuple(st.key for st in STEPS if st.kind == "curve")
#: A one-test step (re-estimation, BQ), drawn as a point where the first of
#: its steps' curves that the experiment has ended.
_POINTS = {st.key: st.point_of for st in STEPS if st.kind == "point"}


def _clean(values):
    return [v if (v is not None and math.isfinite(v)) else math.nan for v in values]


def _label(path):
    stem = os.path.splitext(os.path.basename(path))[0]
    return stem[len("2_bipattern"):].lstrip("_-") or "BiPattern"


def curves(exp):
    """The plotted series: {step: dict(it, sec, loss_it, loss_sec, loss, acc_it,
    acc_sec, acc)} with offsets applied, and the BiPattern markers."""
    full = exp.results.get("full")
    it0 = sec0 = 0.0
    if full is not None and full.log.kind == "train" and full.log.rows:
        it0 = full.log.last_iteration
        sec0 = full.log.seconds or 0.0
    markers, t = [], sec0
    chosen = exp.results.get("bipattern")
    for r in exp.bipattern:
        t += r.log.seconds or 0.0
        markers.append(dict(it=it0, sec=t, acc=r.acc.top1, label=_label(r.path),
                            chosen=r is chosen))
    series = {}
    for key in _CURVES:
        r = exp.results.get(key)
        if r is None or r.log.kind != "train":
            continue
        di, ds = (0.0, 0.0) if key == _CURVES[0] else (it0, t)
        its, secs, loss = r.log.series("loss")
        s = dict(loss_it=[i + di for i in its], loss_sec=[x + ds for x in secs],
                 loss=_clean(loss))
        col = f"test:{r.acc.top1_name}" if r.acc.top1_name else None
        its, secs, acc = r.log.series(col) if col else ([], [], [])
        s.update(acc_it=[i + di for i in its], acc_sec=[x + ds for x in secs],
                 acc=_clean(acc))
        series[key] = s
    for key, bases in _POINTS.items():
        r = exp.results.get(key)
        b = next((series[k] for k in bases if k in series), None)
        if r is None or b is None or not b["loss_it"] + b["acc_it"]:
            continue
        end_it = max(b["loss_it"] + b["acc_it"])
        end_sec = max((x for x in b["loss_sec"] + b["acc_sec"] if math.isfinite(x)),
                      default=math.nan)
        series[key] = dict(loss_it=[], loss_sec=[], loss=[], acc_it=[end_it],
                           acc_sec=[end_sec + (r.log.seconds or 0.0)],
                           acc=_clean([r.acc.top1]))
    return series, markers, (it0, sec0)


def plot_experiment(exp, out_path, dpi=120):
    """Write the 2 x 2 figure (loss, top-1) x (iterations, seconds) as PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series, markers, (it0, sec0) = curves(exp)
    if not series and not markers:
        raise UserError(exp.folder, "nothing to plot (no training or BiPattern results)")
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), squeeze=False)
    for row, xkey in enumerate(("it", "sec")):
        ax_loss, ax_acc = axes[row]
        for key, s in series.items():
            color, label = _STYLE[key]
            if key in _POINTS:
                ax_acc.plot(s[f"acc_{xkey}"], s["acc"], linestyle="none", marker="D",
                            mfc="none", color=color, ms=8, label=label)
                continue
            ax_loss.plot(s[f"loss_{xkey}"], s["loss"], color=color, lw=1, label=label)
            if s["acc"]:
                ax_acc.plot(s[f"acc_{xkey}"], s["acc"], color=color, lw=1.2, marker=".",
                            ms=4, label=label)
        other_label = "2: BiPattern, other scales/offsets"
        for m in markers:
            if m["acc"] is None or not math.isfinite(m["acc"]):
                continue
            label = f"2: BiPattern {m['label']}" if m["chosen"] else other_label
            if not m["chosen"]:
                other_label = None
            ax_acc.plot([m[xkey]], [m["acc"]], linestyle="none",
                        marker="*" if m["chosen"] else "o", color="C1",
                        ms=12 if m["chosen"] else 5, label=label)
        if "full" in series and (markers or len(series) > 1):
            x = it0 if xkey == "it" else sec0
            for ax in (ax_loss, ax_acc):
                ax.axvline(x, color="0.5", ls=":", lw=1)
            ax_acc.annotate("binarized", (x, 1.0), xycoords=("data", "axes fraction"),
                            xytext=(3, -12), textcoords="offset points", fontsize=8,
                            color="0.4")
        loss = [v for s in series.values() for v in s["loss"] if math.isfinite(v)]
        if loss and min(loss) > 0 and max(loss) / min(loss) > 30:
            ax_loss.set_yscale("log")
        xlabel = "iteration (steps 3/4 after step 1)" if xkey == "it" else \
            "wall-clock seconds while Caffe ran"
        ax_loss.set_xlabel(xlabel)
        ax_acc.set_xlabel(xlabel)
        ax_loss.set_ylabel("training loss")
        names = sorted({s.acc.top1_name for s in exp.results.values() if s.acc.top1_name})
        ax_acc.set_ylabel("test top-1" + (f" ({', '.join(names)})" if names else ""))
        for ax in (ax_loss, ax_acc):
            ax.grid(True, alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8, loc="best")
    fig.suptitle(exp.name)
    fig.tight_layout()
    with atomic_path(out_path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
        readable(tmp)
    plt.close(fig)
    return out_path


def command(a):
    """What ``tools/plot_logs.py`` does with its parsed command line."""
    exps = load_folders(a.path, a.top1, a.top5)
    warn("plot_logs.py", exps)
    written, skipped = [], []
    for e in exps:
        try:
            written.append(plot_experiment(e, os.path.join(e.folder, FIGURE_NAME), a.dpi))
        except UserError as err:
            skipped.append(err)
    for err in skipped:
        print(f"plot_logs.py: warning: {err}", file=sys.stderr)
    if not written:
        raise UserError(a.path, "no experiment with results to plot")
    missing = []
    if not log_files(a.path):       # the logs root: the comparisons' figures too
        from .comparison_figures import write_figures
        written += write_figures(exps, a.path, a.dpi, say=missing.append)
    for w in written:
        print(f"wrote {os.path.relpath(w)}")
    for line in missing:
        print(line)
    return 0
