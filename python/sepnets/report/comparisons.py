"""The paper's comparisons across experiments, in the paper's forms, from the
same logs as the per-experiment tables: what depth does to binarization
(issue 18) and how the small nets compare (issue 19).

Where they go (one place each): ``tools/parse_logs.py logs/`` appends the two
tables as sections of ``logs/RESULTS.md``; ``tools/plot_logs.py logs/`` writes
``logs/depth_trend.png`` and ``logs/small_nets.png``
(:mod:`.comparison_figures`). Given one experiment folder, neither tool
writes them. A comparison without any experiment of its kind is not written
(the tools say so in one line); unfinished steps are marked as in every
table, missing ones are "-".

* **Depth trend**: every ResNet depth we ran (experiments whose
  experiment.json ``full_net`` is ``cifar10-resnet<depth>``) beside the
  release README's ResNet-20/32/44/56 rows (:mod:`.paper`), one column per
  step of the step table, plus the gaps Full - Refined and Full - best
  pattern model (the best top-1 of the models step 5 chooses among) in
  points of top-1, and, where a run kept it (``ste_sign_flips.json``, the
  runner's step 4 or ``tools/compare_patterns.py --out``), the share of
  pattern signs STE changed.
* **Small networks**: the paper's small-network table in CIFAR-10 form:
  SEP-Net-R, SEP-Net-B (fixed patterns; and STE + BN re-estimation when
  run), SEP-Net-BQ (step 5: experiment.json's ``bq_from`` says which model
  was packed, ``bq_bytes`` the packed file's size), MobileNet 0.5,
  SqueezeNet (experiments ``cifar10-sepnet``, ``cifar10-mobilenet``,
  ``cifar10-squeezenet``), and the depth trend's ResNets as reference rows.
  Parameters and size as stored come from the generated deploy prototxts
  through :func:`sepnets.compress.model_summary.catalog_summaries` (the
  project's one counter and pricing rules), multiply-adds per image from
  :func:`sepnets.netgen.params.multiply_adds`; the paper's ImageNet
  parameters, size and top-1 beside them, labelled as theirs.

Each table is followed by its **Reading** (:func:`depth_reading`,
:func:`small_reading`): what it shows in words, computed from finished logs
only (whether the gap falls with depth as in the release, how far our Full is
from theirs; whether SEP-Net-R beats MobileNet 0.5 and SqueezeNet and by how
many points, what SEP-Net-B/BQ keep at their size), or which runs it still
waits for. The README quotes these lines; nothing in them is typed by hand.

Which runs: a comparison shows ONE schedule, so that its rows differ only in
the net. Two experiments are of one schedule when experiment.json's
``schedule`` agrees on every key of :data:`sepnets.pipeline.config.RESULT_KEYS`
that both results can depend on: all of them for a net with a pattern
variant, only steps 1 and 1b's keys for a baseline that runs step 1 alone
(:func:`sepnets.pipeline.steps.possible_steps`; so MobileNet, which never
runs STE, still joins SEP-Net's schedule of the same step 1). Of the
schedules found, the one covering the most nets (depths; small nets) is
shown, ties: more iterations (iters + finetune_iters + ste_iters), then the
first folder. Two runs of one net in it: the one with more steps logged.
The schedule is stated under the section's heading; the runs of these nets
left out are named below the table.
"""
import functools
import math
import os
import re
from dataclasses import dataclass, field

from ..compress.compare_patterns import RECORD as _SIGN_RECORD, read_record
from ..compress.model_summary import net_costs
from ..pipeline.bq import SOURCES as _BQ_SOURCES, best_of
from ..pipeline.config import RESULT_KEYS
from ..pipeline.steps import BY_NAME, STEPS, possible_steps
from .paper import PAPER_LABEL, PAPER_SMALL, RELEASE_CIFAR10, RELEASE_LABEL
from .parse_logs import _cell, _md, step_cell
from .results import TITLES

#: The pattern models step 5 chooses among, by table key: the "best pattern model".
PATTERN_KEYS = tuple(BY_NAME[n].key for n in _BQ_SOURCES)
ITERATION_KEYS = ("iters", "finetune_iters", "ste_iters")
DEPTH_FIGURE = "depth_trend.png"
SMALL_FIGURE = "small_nets.png"
_RESNET = re.compile(r"cifar10-resnet(\d+)")
_DASH = "- <br /> -"


# ------------------------------------------------------------ which runs

@functools.lru_cache(maxsize=None)
def _result_keys(patterns):
    keys = {k for s in possible_steps(patterns) for k in s.uses}
    return tuple(k for k in RESULT_KEYS if k in keys)


@functools.lru_cache(maxsize=None)
def _pattern_experiments():
    """{experiment name: whether it has a pattern net}, from the runner's catalog."""
    from ..pipeline.catalog import experiments
    return {n: e.mean is not None for n, e in experiments().items()}


def schedule_of(exp):
    """{key: value} of the RESULT_KEYS the experiment's results can depend on,
    from its experiment.json; None when it records no schedule."""
    sched = exp.meta.get("schedule")
    if not isinstance(sched, dict):
        return None
    patterns = _pattern_experiments().get(exp.meta.get("name"), True)
    return {k: sched.get(k) for k in _result_keys(patterns)}


def _fits(sched, wider):
    return set(sched) <= set(wider) and all(sched[k] == wider[k] for k in sched)


def _iterations(sched):
    return sum(sched.get(k) or 0 for k in ITERATION_KEYS)


@dataclass
class Group:
    """The experiments of one schedule chosen for a comparison."""
    schedule: dict                                  # the schedule's keys and values
    members: dict                                   # slot (depth, name) -> Experiment
    others: list = field(default_factory=list)      # these nets' runs left out


def choose_group(exps, slot_of):
    """The Group of the schedule covering the most slots (``slot_of(exp)``:
    the depth, the experiment name), ties: more iterations, then the first
    folder; None when no experiment has a slot and a schedule. A quick run
    (experiment.json ``"quick": true``: minutes of training, tests on a
    subset) shows the procedure, not a result: it has no slot, so it is in
    no comparison, not even among the others."""
    exps = [e for e in exps if not e.meta.get("quick") and slot_of(e) is not None]
    cands = [(e, schedule_of(e)) for e in exps]
    cands = [(e, s) for e, s in cands if s is not None]
    best, best_score = None, None
    for _, wide in cands:
        slots = {}
        for e, s in cands:
            if _fits(s, wide):
                slots.setdefault(slot_of(e), []).append(e)
        score = (len(slots), _iterations(wide), len(wide))
        if best_score is None or score > best_score:
            best, best_score = (wide, slots), score
    if best is None:
        return None
    wide, slots = best
    members = {k: max(v, key=lambda e: (len(e.results), -v.index(e)))
               for k, v in slots.items()}
    chosen = {id(e) for e in members.values()}
    others = [e for e in exps if id(e) not in chosen]
    return Group(dict(wide), dict(sorted(members.items())), others)


def depth_of(exp):
    m = _RESNET.fullmatch(str(exp.meta.get("full_net", "")))
    return int(m.group(1)) if m else None


def depth_group(exps):
    return choose_group(exps, depth_of)


# ------------------------------------------------------------ numbers

def finished(r):
    """Whether a step's log is complete: a training log that reached
    "Optimization Done.", a test log with its final summary."""
    if r is None:
        return False
    if r.log.kind == "test":
        return bool(r.log.evaluation and r.log.evaluation.complete)
    return bool(r.log.complete)


def _top1(r):
    v = r.acc.top1 if r is not None else None
    return v if v is not None and math.isfinite(v) else None


@dataclass
class Gap:
    points: float        # Full - other, top-1, in percentage points
    key: str             # the other step
    finished: bool       # both logs complete


def gap(exp, key):
    """Full - `key` in points of top-1, or None when either has no top-1."""
    full, other = exp.results.get("full"), exp.results.get(key)
    if _top1(full) is None or _top1(other) is None:
        return None
    return Gap(100 * (_top1(full) - _top1(other)), key, finished(full) and finished(other))


def best_pattern(exp, keys=PATTERN_KEYS):
    """The key, among `keys`, of the pattern model with the best top-1 (ties:
    the earlier step): step 5's rule (:func:`sepnets.pipeline.bq.best_of`)."""
    i = best_of([_top1(exp.results.get(k)) for k in keys])
    return None if i is None else keys[i]


def sign_flips(exp):
    """The share of pattern signs STE changed in `exp` (its sign-flip
    record), or None when the run kept none."""
    rec = read_record(os.path.join(exp.folder, _SIGN_RECORD))
    return rec["binary_fraction"] if rec else None


def schedule_text(sched):
    """The schedule as 'iters 12000, batch 128, ...' (keys without a value left out)."""
    def fmt(v):
        return f"{v:g}" if isinstance(v, float) else str(v)
    return ", ".join(f"{k} {fmt(v)}" for k, v in sched.items() if v is not None)


def _run_label(exp, root):
    """'ResNet-20 (this project, 12000-iters-ste6000-m20)': the net and its run folder."""
    model = str(exp.meta.get("model") or exp.meta.get("name") or os.path.basename(exp.folder))
    run = os.path.relpath(os.path.dirname(os.path.normpath(exp.folder)), root)
    return f"{model} (this project{'' if run == os.curdir else ', ' + run})"


def _link(exp, root, text):
    return f"[{_md(text)}]({os.path.relpath(exp.folder, root)}/results.md)"


def _table(head, rows):
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
                     + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def _others_line(group, root):
    if not group.others:
        return ""
    return ("\nRuns of these nets with another schedule (or a second run), not in this table: "
            + ", ".join(_link(e, root, os.path.relpath(e.folder, root)) for e in group.others)
            + ".\n")


# ------------------------------------------------------------ depth trend

def depth_table(group, root, digits=4):
    """The release's form, ours beside theirs, one depth after the other."""
    exps = list(group.members.values())
    steps = [s.key for s in STEPS if not s.optional or any(s.key in e.results for e in exps)]
    pd = max(digits - 2, 0)
    flips = {d: sign_flips(e) for d, e in group.members.items()}
    signs = any(v is not None for v in flips.values())
    head = ["Model", "Acc", "Ref"] + [TITLES[k] for k in steps] + \
        ["Full - Refined (points)", "Full - best pattern model (points)"] + \
        (["Signs STE changed (% of pattern weights)"] if signs else [])
    rows = []
    for depth in sorted(set(RELEASE_CIFAR10) | set(group.members)):
        rel = RELEASE_CIFAR10.get(depth)
        if rel is not None:
            by = {"full": rel.full, "bipattern": rel.bipattern, "refined": rel.refined}
            g = f"{100 * (rel.full[0] - rel.refined[0]):.{pd}f}"
            rows.append([f"ResNet-{depth} ({RELEASE_LABEL})", "Top 1 <br /> Top 5",
                         _cell(rel.ref, None, digits)]
                        + [_cell(*by[k], digits) if k in by else _DASH for k in steps]
                        + [g, f"{g} ({TITLES['refined']})"] + (["-"] if signs else []))
        exp = group.members.get(depth)
        if exp is not None:
            ref = exp.meta.get("reference") if isinstance(exp.meta.get("reference"), dict) else {}
            best = best_pattern(exp)
            rows.append([_link(exp, root, _run_label(exp, root)), "Top 1 <br /> Top 5",
                         _cell(ref.get("top1"), ref.get("top5"), digits)]
                        + [step_cell(exp.results.get(k), digits) for k in steps]
                        + [_gap_cell(gap(exp, "refined"), pd, False),
                           _gap_cell(gap(exp, best) if best else None, pd, True)]
                        + ([_points(100 * flips[depth], pd) if flips[depth] is not None
                            else "-"] if signs else []))
    note = ("\nSigns STE changed: of the pattern layers' weights, the share whose sign differs "
            "between the full-precision model and the STE-trained one (`"
            + _SIGN_RECORD + "` beside the run's logs; `tools/compare_patterns.py`).\n"
            if signs else "")
    return _table(head, rows) + note


def _gap_cell(g, pd, named):
    if g is None:
        return "-"
    text = _points(g.points, pd) + (f" ({TITLES[g.key]})" if named else "")
    return text + ("" if g.finished else " (unfinished)")


def _points(v, pd):
    return f"{v:.{pd}f}"


def _series(values, pd):
    """'ResNet-20 4.35, ResNet-56 1.20' from {depth: points}."""
    return ", ".join(f"ResNet-{d} {_points(v, pd)}" for d, v in sorted(values.items()))


def _trend(values):
    """How a {depth: gap} series moves with depth: 'falls', 'rises' or 'does
    not move one way' (strictly, depth after depth)."""
    v = [values[d] for d in sorted(values)]
    pairs = list(zip(v, v[1:]))
    if all(b < a for a, b in pairs):
        return "falls"
    if all(b > a for a, b in pairs):
        return "rises"
    return "does not move one way"


def depth_reading(group, digits=4):
    """What the depth table shows, in words, from finished logs only: whether
    our Full - Refined gap (and Full - best pattern model) falls with depth
    as the release's does, and how far our Full is from the release's.
    Stated once two depths have finished both steps; until then it says
    which are still missing."""
    pd = max(digits - 2, 0)
    fixed, short = {}, {}
    for depth, exp in group.members.items():
        g = gap(exp, "refined")
        if g is not None and g.finished:
            fixed[depth] = g.points
        rel, full = RELEASE_CIFAR10.get(depth), exp.results.get("full")
        if rel is not None and finished(full) and _top1(full) is not None:
            short[depth] = 100 * (rel.full[0] - _top1(full))
    if len(fixed) < 2:
        done = ", ".join(f"ResNet-{d}" for d in sorted(fixed)) or "none"
        text = ("**Reading**: not yet: the trend needs steps 1 and 3 finished at two depths "
                f"or more (finished: {done}).")
    else:
        theirs = {d: 100 * (RELEASE_CIFAR10[d].full[0] - RELEASE_CIFAR10[d].refined[0])
                  for d in fixed if d in RELEASE_CIFAR10}
        trend, release = _trend(fixed), _trend(theirs)
        text = (f"**Reading**: Full - Refined (fixed patterns) {trend} with depth here "
                f"({_series(fixed, pd)} points)"
                + (("; in the release it "
                    + ("does too" if release == trend == "falls" else release)
                    + f" ({_series(theirs, pd)}).") if len(theirs) >= 2 else
                   "; the release has fewer than two of these depths."))
        text += _best_reading(group, fixed, pd)
    text += _bipattern_reading(group, digits)
    if short:
        text += (" Our Full is below the release's by " + _series(short, pd)
                 + f" points of top-1 (our schedule: {group.schedule.get('iters')} iterations "
                 f"at batch {group.schedule.get('batch')}; theirs 80,000 at 256).")
    return text + "\n"


def _best_reading(group, depths, pd):
    """Full - best pattern model against depth, like for like: the best is
    taken among the pattern steps finished at every one of `depths`, so a
    depth whose STE is still running is not set against one whose STE is
    done (that once read "rises with depth" from ResNet-20's STE against
    ResNet-56's fixed patterns). Empty when the best is Refined at every
    depth (the Refined sentence says it) or fewer than two depths are there."""
    members = [group.members[d] for d in sorted(depths)]
    common = [k for k in PATTERN_KEYS if all(finished(e.results.get(k)) for e in members)]
    if len(members) < 2 or not common:
        return ""
    best = {}
    for d, exp in zip(sorted(depths), members):
        key = best_pattern(exp, common)
        best[d] = (gap(exp, key).points, TITLES[key])
    if all(t == TITLES["refined"] for _, t in best.values()):
        return ""
    rest = [TITLES[k] for k in PATTERN_KEYS if k not in common
            and any(e.results.get(k) is not None for e in members)]
    return (f" Full - best pattern model {_trend({d: v for d, (v, _) in best.items()})} with "
            "depth (" + ", ".join(f"ResNet-{d} {_points(v, pd)} ({t})"
                                  for d, (v, t) in sorted(best.items())) + ")"
            + (f"; {', '.join(rest)} not yet finished at every depth, so left out"
               if rest else "") + ".")


def _bipattern_reading(group, digits):
    """Right after binarizing, ours beside the release's, and where step 2b
    ran (finished), what re-estimating the BatchNorm statistics of the same
    binarized weights gives back of the points binarizing took."""
    bip, back = {}, {}
    for depth, exp in sorted(group.members.items()):
        b, full, bn = (exp.results.get(k) for k in ("bipattern", "full", "bipattern_bn"))
        if not (finished(b) and _top1(b) is not None):
            continue
        bip[depth] = _top1(b)
        if finished(bn) and finished(full) and None not in (_top1(bn), _top1(full)):
            lost = _top1(full) - _top1(b)
            back[depth] = (_top1(bn), 100 * (_top1(bn) - _top1(b)), 100 * lost)
    if not bip:
        return ""
    pd = max(digits - 2, 0)
    rel = [f"ResNet-{d} {RELEASE_CIFAR10[d].bipattern[0]:.{digits}f}" for d in bip
           if d in RELEASE_CIFAR10]
    text = (" Right after binarizing (BiPattern top-1): "
            + ", ".join(f"ResNet-{d} {v:.{digits}f}" for d, v in bip.items())
            + (f" (the release: {', '.join(rel)})" if rel else "") + ".")
    if back:
        text += (" With the BatchNorm statistics of those binarized weights re-estimated "
                 "(2b, weights unchanged): " + ", ".join(
                     f"ResNet-{d} {v:.{digits}f}, {_points(up, pd)} of the {_points(lost, pd)} "
                     "points binarizing took" for d, (v, up, lost) in back.items()) + ".")
    return text


def depth_section(group, root, digits=4):
    depths = ", ".join(f"ResNet-{d}" for d in group.members)
    iters = group.schedule.get("iters")
    return (f"## Depth trend: {depths} on CIFAR-10"
            + (f", {iters:,} full-precision iterations" if iters else "") + "\n\n"
            f"Our runs of one schedule (experiment.json: {schedule_text(group.schedule)}) "
            f"beside the {RELEASE_LABEL}'s rows (their numbers: 80,000 iterations at batch "
            "256 on a GPU; not run here). Each cell: top-1 over top-5; the gaps are in "
            "percentage points of top-1, the best pattern model being the pattern model "
            f"with the best top-1 ({'; '.join(TITLES[k] for k in PATTERN_KEYS)}). Figure: "
            f"[{DEPTH_FIGURE}]({DEPTH_FIGURE}) (`tools/plot_logs.py`).\n\n"
            + depth_table(group, root, digits) + "\n" + depth_reading(group, digits)
            + _others_line(group, root))


# ------------------------------------------------------------ small nets

@dataclass(frozen=True)
class SmallRow:
    label: str
    experiment: str           # the runner's experiment (experiment.json "name")
    step: str                 # the step whose test gives the accuracy
    net: str                  # the catalog entry priced
    paper: str                # the paper's row (PAPER_SMALL)
    optional: bool = False    # a row only when the step has a log


#: The paper's small-network table in CIFAR-10 form, in its order.
SMALL_ROWS = (
    SmallRow("SEP-Net-R (full precision)", "cifar10-sepnet", "full", "cifar10-sepnet-r",
             "SEP-Net-R"),
    SmallRow("SEP-Net-B (fixed patterns)", "cifar10-sepnet", "refined", "cifar10-sepnet-b",
             "SEP-Net-B"),
    SmallRow("SEP-Net-B (STE, BN re-est.)", "cifar10-sepnet", "ste_bn", "cifar10-sepnet-b",
             "SEP-Net-B", optional=True),
    SmallRow("SEP-Net-BQ", "cifar10-sepnet", "bq", "cifar10-sepnet-bq", "SEP-Net-BQ"),
    SmallRow("MobileNet 0.5", "cifar10-mobilenet", "full", "cifar10-mobilenet", "MobileNet 0.5"),
    SmallRow("SqueezeNet", "cifar10-squeezenet", "full", "cifar10-squeezenet", "SqueezeNet"),
    # the baseline again without the ReLU on its class scores, behind which two
    # class channels died in the run above (netgen/baselines.py)
    SmallRow("SqueezeNet, no ReLU on class scores", "cifar10-squeezenet-linear", "full",
             "cifar10-squeezenet-linear", "SqueezeNet", optional=True),
)
SMALL_EXPERIMENTS = tuple(dict.fromkeys(r.experiment for r in SMALL_ROWS))


def small_group(exps):
    return choose_group(exps, lambda e: e.meta.get("name")
                        if e.meta.get("name") in SMALL_EXPERIMENTS else None)


@dataclass
class SmallPoint:
    """One row of the small-network table."""
    label: str
    net: str
    result: object = None     # the StepResult, or None
    exp: object = None        # the Experiment, or None (not run)
    paper: object = None      # PaperSmallNet, or None (references)
    note: str = ""
    reference: bool = False
    step: str = "full"        # the step whose test `result` is


def small_points(group, depths):
    """The table's rows: the paper's nets (those of SMALL_ROWS whose
    experiment is missing too, with "-"), then the depth trend's ResNets as
    references (`depths`: the depth Group, or None)."""
    points = []
    for row in SMALL_ROWS:
        exp = group.members.get(row.experiment) if group else None
        r = exp.results.get(row.step) if exp else None
        if row.optional and r is None:
            continue
        if exp is None:
            note = f"not run (experiment {row.experiment})"
        elif r is None:
            note = f"{TITLES[row.step]}: no log yet"
        else:
            note = f"{TITLES[row.step]} of {row.experiment}"
        if row.step == "bq" and exp is not None and exp.meta.get("bq_from"):
            src = bq_source(exp)
            what = src.title if src else exp.meta["bq_from"]
            note = f"step 5: the {what} model packed"
            if isinstance(exp.meta.get("bq_bytes"), int):
                note += f", .sepnet file {exp.meta['bq_bytes']:,} bytes"
        points.append(SmallPoint(row.label, row.net, r, exp, PAPER_SMALL[row.paper], note,
                                 step=row.step))
    for depth, exp in (depths.members.items() if depths else ()):
        points.append(SmallPoint(f"ResNet-{depth} (reference)", f"cifar10-resnet{depth}",
                                 exp.results.get("full"), exp, None,
                                 "reference: Full of the depth trend's run", True))
    return points


def bn_twin(key):
    """The step that tests `key`'s model with its BatchNorm statistics
    re-estimated (full -> full_bn, refined -> refined_bn), or None."""
    twin = f"{key}_bn"
    return twin if any(s.key == twin for s in STEPS) else None


def small_table(points, costs, root, digits=4):
    head = ["Model", "Params", "Size as stored (MB)", "Multiply-adds / image",
            "CIFAR-10 top 1 <br /> top 5",
            "Same model, BN statistics re-estimated: top 1 <br /> top 5",
            f"Params ({PAPER_LABEL})",
            f"Size, MB ({PAPER_LABEL})", f"Top 1 ({PAPER_LABEL})", "Notes"]
    rows = []
    for p in points:
        c = costs.get(p.net)
        pp = p.paper
        label = _link(p.exp, root, p.label) if p.exp is not None else _md(p.label)
        rows.append([
            label,
            f"{c.params / 1e6:.3f} M" if c else "-",
            f"{c.nbytes / 1e6:.2f}" if c else "-",
            f"{c.macs / 1e6:.1f} M" if c else "-",
            step_cell(p.result, digits) if p.result is not None else _DASH,
            _twin_cell(p, digits),
            f"{pp.params_m:g} M" if pp and pp.params_m else "-",
            f"{pp.size_mb:g}" if pp and pp.size_mb else "-",
            f"{pp.top1_pct:g} %" if pp and pp.top1_pct else "-",
            _md(p.note)])
    return _table(head, rows)


def twin_result(point):
    """The result of `point`'s model tested with re-estimated BatchNorm
    statistics (its step's :func:`bn_twin`), or None."""
    twin = bn_twin(point.step)
    return point.exp.results.get(twin) if twin and point.exp is not None else None


def _twin_cell(point, digits):
    if bn_twin(point.step) is None:
        return "n/a"
    r = twin_result(point)
    return step_cell(r, digits) if r is not None else _DASH


def bq_source(exp):
    """The step whose model step 5 packed (experiment.json's ``bq_from``), or
    None where it is not recorded or not a step of the table."""
    return BY_NAME.get(str(exp.meta.get("bq_from", "")))


def _reestimated(point):
    """Whether `point`'s model was tested with re-estimated BatchNorm
    statistics (a ``*_bn`` step, or BQ packed from one): such a model is set
    against SEP-Net-R's re-estimated test, not against its moving averages,
    so that a difference is the patterns', not the statistics'."""
    key = point.step
    if key == "bq" and point.exp is not None:
        src = bq_source(point.exp)
        key = src.key if src else ""
    return key.endswith("_bn")


def small_reading(points, costs, digits=4):
    """What the small-network table shows, in words, from finished logs
    only: whether SEP-Net-R beats MobileNet 0.5 and SqueezeNet (margin in
    points of top-1, parameter ratio), what SEP-Net-B/BQ keep and at what
    size; the nets still unfinished are named."""
    pd = max(digits - 2, 0)
    by = {p.label: p for p in points if not p.reference}

    def top(label, result_of=lambda p: p.result):
        """Top-1 of the row's (finished) result; `result_of`: which of its results."""
        r = result_of(by[label]) if label in by else None
        return _top1(r) if finished(r) else None

    def cost(label):
        return costs.get(by[label].net) if label in by else None

    def twin_top(label):
        return top(label, twin_result)

    r_label = SMALL_ROWS[0].label
    r, rb, parts, waiting = top(r_label), twin_top(r_label), [], []
    for row in SMALL_ROWS[1:]:
        v = top(row.label)
        if v is None:
            if row.label in by:
                waiting.append(row.label)
            continue
        if r is None:
            continue
        c, cr = cost(row.label), cost(r_label)
        if row.step == "full":
            d = 100 * (r - v)
            ratio = f" with {cr.params / c.params:.2f}x its parameters" if c and cr else ""
            vb = twin_top(row.label)
            bn = (f"; BatchNorm statistics re-estimated: {rb:.{digits}f} against "
                  f"{vb:.{digits}f} ({100 * (vb - rb):+.{pd}f} points)"
                  if rb is not None and vb is not None else "")
            parts.append(f"SEP-Net-R {'beats' if d > 0 else 'does not beat'} {row.label}: "
                         f"{r:.{digits}f} against {v:.{digits}f} top-1 "
                         f"({-d:+.{pd}f} points for {row.label}){ratio}{bn}")
        else:
            size = (f" at {c.nbytes / 1e6:.2f} MB against SEP-Net-R's {cr.nbytes / 1e6:.2f} MB"
                    if c and cr else "")
            ref, ref_text = r, "SEP-Net-R"
            if rb is not None and _reestimated(by[row.label]):
                ref = rb
                ref_text = (f"SEP-Net-R with its BatchNorm statistics re-estimated too "
                            f"({rb:.{digits}f})")
            d = 100 * (ref - v)
            side = "below" if d >= 0 else "above"
            parts.append(f"{row.label} keeps {v:.{digits}f} ({_points(abs(d), pd)} points "
                         f"{side} {ref_text}){size}")
    if r is None:
        waiting.insert(0, r_label)
    text = "**Reading**: " + ("; ".join(parts) + "." if parts else "not yet.")
    if waiting:
        text += " Not finished or not run yet: " + ", ".join(waiting) + "."
    theirs = ", ".join(f"{p.name} {p.top1_pct:g} %" for p in PAPER_SMALL.values())
    return text + f" (The paper, ImageNet top-1: {theirs}.)\n"


def small_section(group, depths, root, digits=4, costs=None, why=None):
    points = small_points(group, depths)
    if costs is None:
        costs = net_costs(tuple(dict.fromkeys(p.net for p in points)))
    refs = (f" The reference ResNets were trained with the depth trend's schedule "
            f"({schedule_text(depths.schedule)}).") if depths else ""
    return ("## Small networks: the paper's comparison in CIFAR-10 form\n\n"
            f"Our runs of one schedule (experiment.json: {schedule_text(group.schedule)})."
            + refs + " Params (learned, BatchNorm statistics not counted) and multiply-adds "
            "per image: the generated deploy prototxts; size as stored: "
            "`tools/model_summary.py`'s rules (1-bit patterns with a scale per filter, "
            "8-bit 1x1/FC weights for BQ, fp32 otherwise; MB = 10^6 bytes). The columns "
            f"marked ({PAPER_LABEL}) are the paper's numbers for its ImageNet nets (for the "
            "shape of the comparison; not comparable in value). Figure: "
            f"[{SMALL_FIGURE}]({SMALL_FIGURE}) (`tools/plot_logs.py`).\n\n"
            + (f"Sizes and multiply-adds not available: {why}\n\n" if why else "")
            + small_table(points, costs, root, digits) + "\n"
            + small_reading(points, costs, digits) + _others_line(group, root))


# ------------------------------------------------------------ both

def groups(exps, root, say, depth_what="depth trend", small_what="small-network comparison"):
    """(depth group, small group) of `exps`, either None when there is none;
    `say` gets one line for each missing one, naming what is not written."""
    depths, small = depth_group(exps), small_group(exps)
    if depths is None:
        say(f"no {depth_what}: no experiment of a cifar10-resnet<depth> net with a recorded "
            f"schedule (quick runs left out) under {root}")
    if small is None:
        say(f"no {small_what}: no {', '.join(SMALL_EXPERIMENTS)} experiment with "
            f"a recorded schedule (quick runs left out) under {root}")
    return depths, small


def markdown(exps, root, digits=4, say=print):
    """The comparison sections for RESULTS.md ("" when there is none);
    `say` gets one line for each comparison not written."""
    from ..errors import UserError
    out = []
    depths, small = groups(exps, root, say)
    if depths is not None:
        out.append(depth_section(depths, root, digits))
    if small is not None:
        try:
            out.append(small_section(small, depths, root, digits))
        except UserError as e:
            out.append(small_section(small, depths, root, digits, costs={}, why=str(e)))
    return "".join("\n" + s for s in out)
