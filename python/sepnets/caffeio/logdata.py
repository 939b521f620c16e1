"""What a parsed Caffe log holds (:class:`CaffeLog`, its test evaluation and
the accuracy read from it), which test output is the top-k accuracy, and the
CSV form of a log; the parser that fills these is :mod:`sepnets.caffeio.log`.
"""
import math
import re
from dataclasses import dataclass, field

_TOP = re.compile(r"top[-_ ]?(\d+)")
_ACC = re.compile(r"(?:^|[-_.])acc(?:uracy)?(?:[-_@]?(\d+))?$")


def accuracy_k(name):
    """k of a top-k accuracy output named like Caffe nets name them, else None.

    ``accuracy``, ``acc``, ``top-1``, ``accuracy_top1``, ``loss3/top-1`` -> 1;
    ``accuracy_top5``, ``top-5``, ``acc@5``, ``loss3/top-5`` -> 5.
    """
    last = name.rsplit("/", 1)[-1].lower()
    m = _TOP.search(last)
    if m:
        return int(m.group(1))
    m = _ACC.search(last)
    if m:
        return int(m.group(1) or 1)
    return None


def pick_accuracy(names, loss_weights=None, k=1):
    """The output that reports top-k accuracy of the net's main head.

    Several heads (GoogLeNet's loss1/loss2/loss3) each report accuracies; the
    main one is the head whose loss has the largest weight (loss3, weight 1
    against 0.3), then the last one in the net's output order.
    """
    loss_weights = loss_weights or {}
    group_weight = {}
    for n in names:
        g = n.rsplit("/", 1)[0] if "/" in n else ""
        group_weight[g] = max(group_weight.get(g, 0.0), loss_weights.get(n) or 0.0)
    best, best_key = None, None
    for pos, n in enumerate(names):
        if accuracy_k(n) != k:
            continue
        g = n.rsplit("/", 1)[0] if "/" in n else ""
        key = (group_weight.get(g, 0.0), pos)
        if best_key is None or key > best_key:
            best, best_key = n, key
    return best


@dataclass
class Evaluation:
    """One ``caffe test`` run."""
    iterations: int = None          # the batches asked for (``Running for N``)
    batches: int = 0                # the batches logged
    loss: float = None
    outputs: dict = field(default_factory=dict)        # name -> mean value
    loss_weights: dict = field(default_factory=dict)   # name -> weight
    complete: bool = False          # the final summary was logged
    seconds: float = None
    _sums: dict = field(default_factory=dict, repr=False)
    _counts: dict = field(default_factory=dict, repr=False)
    _start: object = field(default=None, repr=False)
    _end: object = field(default=None, repr=False)


@dataclass
class Accuracy:
    top1: float = None
    top5: float = None
    iteration: int = None
    top1_name: str = None
    top5_name: str = None


@dataclass
class CaffeLog:
    """What one log file says. ``rows`` hold the training history (train
    logs), ``evaluation`` the result of ``caffe test`` (test logs)."""
    path: str
    kind: str = None                      # "train", "test" or None
    rows: list = field(default_factory=list)     # dicts sorted by iteration
    columns: list = field(default_factory=list)
    test_names: dict = field(default_factory=dict)     # net index -> [names]
    loss_weights: dict = field(default_factory=dict)   # column -> weight
    evaluation: Evaluation = None
    complete: bool = False               # "Optimization Done." in the last run
    stopped_early: bool = False
    truncated: bool = False              # last line cut (run killed or running)
    segments: int = 0                    # caffe processes that wrote the log
    restarts: list = field(default_factory=list)     # iterations resumed at
    snapshots: list = field(default_factory=list)    # (iteration, path)
    resumed_from: list = field(default_factory=list)
    weights: list = field(default_factory=list)      # "Finetuning from"
    net_name: str = None
    total_seconds: float = None
    warnings: list = field(default_factory=list)

    @property
    def last_iteration(self):
        return self.rows[-1]["iteration"] if self.rows else None

    @property
    def seconds(self):
        """Wall-clock seconds Caffe ran (from a run's first line to its last,
        gaps between runs excluded); for a test log, the evaluation's."""
        if self.kind == "test" and self.evaluation:
            return self.evaluation.seconds
        return self.total_seconds

    def series(self, column):
        """(iterations, seconds, values) of the rows that have `column`."""
        its, secs, vals = [], [], []
        for r in self.rows:
            if column in r:
                its.append(r["iteration"])
                s = r.get("seconds")
                secs.append(math.nan if s is None else s)
                vals.append(r[column])
        return its, secs, vals

    def last_value(self, column):
        """(iteration, value) of the latest row with `column`, or None."""
        for r in reversed(self.rows):
            if column in r:
                return r["iteration"], r[column]
        return None

    def output_names(self, net=0):
        if self.kind == "test":
            return list(self.evaluation.outputs) if self.evaluation else []
        return list(self.test_names.get(net, []))

    def accuracy(self, top1=None, top5=None, net=0):
        """Top-1/top-5 test accuracy at the end of the log (the last test of a
        training log, the summary of a test log); names picked by
        :func:`pick_accuracy` unless given."""
        names = self.output_names(net)
        if self.kind == "test":
            weights = self.evaluation.loss_weights if self.evaluation else {}
        else:
            pre = test_column(net, "")
            weights = {c[len(pre):]: w for c, w in self.loss_weights.items()
                       if c.startswith(pre)}
        n1 = top1 or pick_accuracy(names, weights, 1)
        n5 = top5 or pick_accuracy(names, weights, 5)
        acc = Accuracy(top1_name=n1, top5_name=n5)
        if self.kind == "test":
            if self.evaluation:
                acc.top1 = self.evaluation.outputs.get(n1) if n1 else None
                acc.top5 = self.evaluation.outputs.get(n5) if n5 else None
                acc.iteration = self.evaluation.batches
            return acc
        found = self.last_value(test_column(net, n1)) if n1 else None
        if found:
            acc.iteration, acc.top1 = found
            row = next(r for r in self.rows if r["iteration"] == acc.iteration)
            acc.top5 = row.get(test_column(net, n5)) if n5 else None
        elif n5:
            found = self.last_value(test_column(net, n5))
            if found:
                acc.iteration, acc.top5 = found
        return acc


def test_column(net, name):
    """CSV column of a test output: ``test:<name>`` (net #0), ``test#1:<name>``."""
    return f"test:{name}" if net == 0 else f"test#{net}:{name}"



def _fmt(v):
    if v is None:
        return ""
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return format(v, ".9g")
    return str(v)


def csv_text(log):
    """CSV of a log: one row per logged iteration (train logs), or the
    evaluation's summary (test logs: batches, seconds, loss, each output)."""
    import csv
    import io
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if log.kind == "test":
        ev = log.evaluation
        names = list(ev.outputs)
        w.writerow(["batches", "seconds", "loss", "complete"] + names)
        w.writerow([ev.batches, _fmt(ev.seconds), _fmt(ev.loss), int(ev.complete)]
                   + [_fmt(ev.outputs[n]) for n in names])
    else:
        w.writerow(log.columns)
        for r in log.rows:
            w.writerow([_fmt(r.get(c)) for c in log.columns])
    return buf.getvalue()
