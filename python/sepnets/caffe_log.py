"""Reading the logs that Caffe's glog writes during ``caffe train`` and
``caffe test``, as they are found after real runs rather than in the ideal case.

Caffe's own ``tools/extra/parse_log.py`` assumes one uninterrupted run, so a
training step that was killed and resumed from a snapshot (with the new run
appended to the same log) gives it iterations that go backwards, duplicated
tests and a time axis that counts the hours the machine sat idle. This parser:

* keeps, for every iteration, the values of the latest run that logged it, and
  drops what a killed run logged after the snapshot it was resumed from (that
  history does not lead to the final model);
* measures ``seconds`` as wall-clock time while Caffe ran: the gap between a
  killed run and its resumption is not counted. Runs are told apart by the
  thread id of the solver's lines (a new process has a new one), by
  ``Initializing solver from parameters`` / glog's ``Log file created at``
  headers, and as a last resort by the iteration number going back. glog stamps
  carry month and day (or, in newer glog, the year too), so runs over midnight
  or over New Year's Eve are fine;
* ignores a last line cut by a kill (no newline at the end of the file) and the
  cut fragment where a resumed run's output was appended to it;
* keeps NaN and infinite losses as ``nan``/``inf`` (C++ prints ``-nan``);
* names every test output, with several test nets (``Testing net (#1)``) and
  several heads (GoogLeNet's ``loss1/top-1`` ... ``loss3/top-5``);
* reads the older ``Iteration N, loss = L`` display line and Caffe 1.0's
  ``Iteration N (X iter/s, Ys/100 iters), loss = L`` alike;
* reads ``caffe test`` logs (``Batch i, name = v`` lines and the final
  ``Loss:`` / ``name = mean`` summary of caffe.cpp), keeping the batch means
  when a test was cut short so that a partial evaluation is visible as such.
"""
import datetime
import math
import re
from dataclasses import dataclass, field

from .errors import UserError

# glog: [IWEF]mmdd hh:mm:ss.uuuuuu threadid file:line] msg (newer glog: yyyymmdd)
_GLOG = re.compile(
    r"^\s*([IWEF])(\d{8}|\d{4}) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?\s+(\S+)\s+"
    r"([^\s:\]]+):(\d+)\]\s?(.*)$")
# A glog prefix in the middle of a line: a killed run's cut line with the next
# run's first line appended to it.
_GLOG_INSIDE = re.compile(
    r"(?<=\S)(?=[IWEF](?:\d{8}|\d{4}) \d\d:\d\d:\d\d\.\d+\s+\S+\s+[^\s:\]]+:\d+\])")
_HEADER = re.compile(r"^Log file created at: (\d{4})/(\d\d)/(\d\d) ")

_NUM = r"([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|inf|infinity)|-?nan\S*)"
_LOSSMSG = r"(?: \(\* (\S+) = \S+ loss\))?"
_DISPLAY = re.compile(r"^Iteration (\d+)(?: \(([^)]*)\))?, loss = " + _NUM + r"$", re.I)
_LR = re.compile(r"^Iteration (\d+), lr = " + _NUM + r"$", re.I)
_TESTING = re.compile(r"^Iteration (\d+), Testing net \(#(\d+)\)$")
_TEST_OUT = re.compile(r"^Test net output #(\d+): (.+?) = " + _NUM + _LOSSMSG + r"$", re.I)
_TRAIN_OUT = re.compile(r"^Train net output #(\d+): (.+?) = " + _NUM + _LOSSMSG + r"$", re.I)
_TEST_LOSS = re.compile(r"^Test loss: " + _NUM + r"$", re.I)
_SNAPSHOT = re.compile(r"^Snapshotting to (?:binary proto|HDF5) file (.+)$")
_RESTORE = re.compile(r"^(?:Restoring previous solver status from|Resuming from) (.+)$")
_FINETUNE = re.compile(r"^Finetuning from (.+)$")
_SOLVING = re.compile(r"^Solving (.*)$")
_RUNNING_FOR = re.compile(r"^Running for (\d+) iterations\.$")
_BATCH = re.compile(r"^Batch (\d+), (.+?) = " + _NUM + r"$", re.I)
_CAFFE_TEST_LOSS = re.compile(r"^Loss: " + _NUM + r"$", re.I)
_SUMMARY_OUT = re.compile(r"^(\S+) = " + _NUM + _LOSSMSG + r"$", re.I)
_ITER_FILE = re.compile(r"_iter_(\d+)\.(?:caffemodel|solverstate)(?:\.h5)?$")
_TOP = re.compile(r"top[-_ ]?(\d+)")
_ACC = re.compile(r"(?:^|[-_.])acc(?:uracy)?(?:[-_@]?(\d+))?$")

# Source files whose lines come from the thread of Caffe's root solver (data
# layers log from prefetch threads, other solvers of multi-GPU runs are quiet).
_MAIN_FILES = {"caffe.cpp", "solver.cpp", "sgd_solver.cpp"}


def _float(text):
    t = text.strip().lower()
    if "nan" in t:
        return math.nan
    return float(t)


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


def _split_glued(lines):
    """Split lines where a killed run's cut line has the next run glued on."""
    for no, line in lines:
        parts = _GLOG_INSIDE.split(line)
        if len(parts) > 1:
            yield no, parts[0], True
            for p in parts[1:]:
                yield no, p, False
        else:
            yield no, line, False


class _Parser:
    def __init__(self, path, year):
        self.log = CaffeLog(path)
        self.year = year
        self.last_dt = None
        self.rows = {}                 # iteration -> dict
        self.columns = ["iteration", "seconds"]
        # timing of runs
        self.main_tid = None
        self.first_seen = {}           # tid -> (datetime, datetime of the line before)
        self.seg_start = None          # datetime the current run started
        self.offset = 0.0              # seconds of the earlier runs
        self.prev_dt = None
        self.seg_has_iter = False
        self.last_iter = None
        self.pending_restart = False
        self.resume_iter = None
        self.header_seen = False
        # state of the current test / display / caffe test
        self.test_at = None            # (iteration, net)
        self.test_index = {}
        self.display_at = None
        self.evals = []
        self.in_summary = False

    # --- time ---------------------------------------------------------
    def _stamp(self, date, hh, mm, ss, frac):
        try:
            if len(date) == 8:
                year, month, day = int(date[:4]), int(date[4:6]), int(date[6:])
            else:
                year, month, day = self.year, int(date[:2]), int(date[2:])
            micro = int((frac or "0").ljust(6, "0")[:6])
            dt = datetime.datetime(year, month, day, int(hh), int(mm), int(ss), micro)
            if len(date) == 4 and self.last_dt is not None and \
                    dt < self.last_dt - datetime.timedelta(days=180):
                # stamps without a year went from December to January
                self.year += 1
                dt = dt.replace(year=self.year)
        except ValueError:
            return None
        self.last_dt = dt
        return dt

    def _new_segment(self, start_dt, end_dt):
        """A new caffe process starts at start_dt; the previous one ended at end_dt."""
        if self.seg_start is not None and end_dt is not None:
            self.offset += max(0.0, (end_dt - self.seg_start).total_seconds())
        self.seg_start = start_dt
        self.log.segments += 1
        self.log.complete = False
        self.log.stopped_early = False
        self.seg_has_iter = False
        self.pending_restart = self.log.segments > 1
        self.resume_iter = None
        self.test_at = None
        self.display_at = None
        self.in_summary = False

    def _seconds(self, dt):
        if dt is None or self.seg_start is None:
            return None
        return self.offset + (dt - self.seg_start).total_seconds()

    # --- rows ---------------------------------------------------------
    def _row(self, it, dt, lineno):
        if self.log.segments == 0:
            self._new_segment(dt, None)
        elif self.last_iter is not None and it < self.last_iter and not self.pending_restart:
            # the iteration went back with no other sign of a new run
            self._new_segment(dt, self.prev_dt)
        if self.pending_restart:
            # what the earlier run logged after the point this run resumed at
            # (the snapshot's iteration, else this run's first) is history
            # that does not lead to the final model
            self.pending_restart = False
            cut = it if self.resume_iter is None else min(it, self.resume_iter)
            for i in [i for i in self.rows if i > cut]:
                del self.rows[i]
            self.log.restarts.append(cut)
        self.last_iter = it
        self.seg_has_iter = True
        row = self.rows.setdefault(it, {"iteration": it})
        s = self._seconds(dt)
        if s is not None:
            row["seconds"] = s
        return row

    def _set(self, row, column, value):
        if column not in self.columns:
            self.columns.append(column)
        row[column] = value

    # --- lines --------------------------------------------------------
    def feed(self, lineno, line, glued=False):
        line = line.replace("\x00", "").rstrip("\r\n")
        if glued:
            self.log.warnings.append(f"line {lineno}: cut line (run killed), ignored")
            return
        m = _HEADER.match(line.strip())
        if m:
            # a glog file header: a new process (files concatenated)
            self.year = int(m.group(1))
            self.last_dt = None
            self.header_seen = True
            return
        g = _GLOG.match(line)
        dt, tid, src = None, None, None
        if g:
            dt = self._stamp(g.group(2), g.group(3), g.group(4), g.group(5), g.group(6))
            tid, src, msg = g.group(7), g.group(8), g.group(10).strip()
        else:
            msg = line.strip()
        if dt is not None:
            if self.log.segments == 0:
                self._new_segment(dt, None)
            elif self.header_seen:
                self._new_segment(dt, self.prev_dt)
                self.main_tid = None
            self.header_seen = False
        if tid is not None and tid not in self.first_seen:
            self.first_seen[tid] = (dt, self.prev_dt)
        if src in _MAIN_FILES and tid is not None:
            if self.main_tid is None:
                self.main_tid = tid
            elif tid != self.main_tid:
                # a new process: it started at the first line of its thread
                self.main_tid = tid
                start, before = self.first_seen[tid]
                self._new_segment(start or dt, before)
        if self.seg_has_iter and (msg in ("Use CPU.", "Initializing solver from parameters:")
                                  or msg.startswith("Using GPUs ")):
            # the first lines of a new process with the same thread id (pid 1
            # in containers, pid reuse)
            self._new_segment(dt, self.prev_dt)
        if dt is not None:
            self.prev_dt = dt
        try:
            self._message(lineno, msg, dt, src)
        except (ValueError, OverflowError):
            self.log.warnings.append(f"line {lineno}: unreadable value, ignored: {msg[:80]}")

    def _message(self, lineno, msg, dt, src):
        m = _LR.match(msg)
        if m:
            self._set(self._row(int(m.group(1)), dt, lineno), "lr", _float(m.group(2)))
            return
        m = _DISPLAY.match(msg)
        if m:
            it = int(m.group(1))
            self._set(self._row(it, dt, lineno), "loss", _float(m.group(3)))
            self.display_at = it
            self.log.kind = "train"
            return
        m = _TESTING.match(msg)
        if m:
            it, net = int(m.group(1)), int(m.group(2))
            self._row(it, dt, lineno)
            self.test_at = (it, net)
            self.test_index = {}
            self.log.kind = "train"
            return
        m = _TEST_OUT.match(msg)
        if m and self.test_at is not None:
            it, net = self.test_at
            name = self._unique(m.group(2), int(m.group(1)))
            col = test_column(net, name)
            names = self.log.test_names.setdefault(net, [])
            if name not in names:
                names.append(name)
            if m.group(4) is not None:
                self.log.loss_weights[col] = _float(m.group(4))
            self._set(self._row(it, dt, lineno), col, _float(m.group(3)))
            return
        m = _TEST_LOSS.match(msg)
        if m and self.test_at is not None:
            it, net = self.test_at
            col = "test_loss" if net == 0 else f"test#{net}_loss"
            self._set(self._row(it, dt, lineno), col, _float(m.group(1)))
            return
        m = _TRAIN_OUT.match(msg)
        if m and self.display_at is not None:
            col = "train:" + m.group(2)
            if m.group(4) is not None:
                self.log.loss_weights[col] = _float(m.group(4))
            self._set(self._row(self.display_at, dt, lineno), col, _float(m.group(3)))
            return
        m = _SNAPSHOT.match(msg)
        if m:
            f = _ITER_FILE.search(m.group(1))
            it = int(f.group(1)) if f else self.last_iter
            self.log.snapshots.append((it, m.group(1)))
            return
        m = _RESTORE.match(msg)
        if m:
            f = _ITER_FILE.search(m.group(1))
            if f:
                self.resume_iter = int(f.group(1))
            if m.group(1) not in self.log.resumed_from:
                self.log.resumed_from.append(m.group(1))
            return
        m = _FINETUNE.match(msg)
        if m:
            self.log.weights.append(m.group(1))
            return
        m = _SOLVING.match(msg)
        if m and src in (None, "solver.cpp"):
            self.log.net_name = m.group(1)
            return
        if msg == "Optimization Done.":
            self.log.complete = True
            return
        if msg == "Optimization stopped early.":
            self.log.stopped_early = True
            return
        self._caffe_test(msg, dt, src)

    def _unique(self, name, index):
        """Blobs with several values log one name several times: name[i]."""
        seen = self.test_index.setdefault(name, [])
        if index not in seen:
            seen.append(index)
        pos = seen.index(index)
        return name if pos == 0 else f"{name}[{pos}]"

    def _caffe_test(self, msg, dt, src):
        if src not in (None, "caffe.cpp"):
            return          # e.g. a data layer's thread between summary lines
        m = _RUNNING_FOR.match(msg)
        if m:
            self.evals.append(Evaluation(iterations=int(m.group(1)), _start=dt))
            self.in_summary = False
            if self.log.kind is None:
                self.log.kind = "test"
            return
        if not self.evals:
            return
        ev = self.evals[-1]
        ev._end = dt or ev._end
        m = _BATCH.match(msg)
        if m:
            b, name, v = int(m.group(1)), m.group(2), _float(m.group(3))
            ev.batches = max(ev.batches, b + 1)
            ev._sums[name] = ev._sums.get(name, 0.0) + v
            ev._counts[name] = ev._counts.get(name, 0) + 1
            return
        m = _CAFFE_TEST_LOSS.match(msg)
        if m:
            ev.loss = _float(m.group(1))
            ev.complete = True
            ev.outputs = {}
            self.in_summary = True
            return
        m = _SUMMARY_OUT.match(msg)
        if m and self.in_summary:
            ev.outputs[m.group(1)] = _float(m.group(2))
            if m.group(3) is not None:
                ev.loss_weights[m.group(1)] = _float(m.group(3))
            return
        self.in_summary = False

    # --- result -------------------------------------------------------
    def finish(self):
        log = self.log
        log.total_seconds = self._seconds(self.prev_dt)
        log.rows = [self.rows[i] for i in sorted(self.rows)]
        present = set()
        for r in log.rows:
            present.update(r)
        # fixed columns first, then train outputs, then test outputs
        order = ["iteration", "seconds", "loss", "lr"]
        rest = [c for c in self.columns if c not in order]
        rest = ([c for c in rest if c.startswith("train:")]
                + [c for c in rest if not c.startswith("train:")])
        log.columns = [c for c in order + rest if c in present or c in ("iteration", "seconds")]
        if self.evals and (log.kind == "test" or not log.rows):
            log.kind = "test"
            done = [e for e in self.evals if e.complete]
            ev = done[-1] if done else self.evals[-1]
            if not ev.complete:
                ev.outputs = {n: ev._sums[n] / ev._counts[n] for n in ev._sums}
            if ev._start is not None and ev._end is not None:
                ev.seconds = (ev._end - ev._start).total_seconds()
            log.evaluation = ev
        if log.kind == "train" and not log.rows:
            log.kind = None
        return log


def parse_text(text, path="<text>"):
    """Parse the text of a Caffe log (see the module docstring)."""
    lines = text.split("\n")
    truncated = bool(lines) and lines[-1].strip() != ""
    last = lines.pop() if lines else ""
    # stamps without a year: assume a leap year only if the log has 29 February
    year = 2000 if re.search(r"^\s*[IWEF]0229 ", text, re.M) else 2001
    p = _Parser(path, year)
    for no, line, glued in _split_glued(enumerate(lines, 1)):
        p.feed(no, line, glued)
    if truncated:
        p.log.truncated = True
        p.log.warnings.append(f"line {len(lines) + 1}: last line cut (run killed or "
                              "still running), ignored")
        m = _GLOG.match(last)
        if m and m.group(10).strip() == "Optimization Done.":
            p.log.complete = True
    return p.finish()


def parse_log(path):
    """Parse a Caffe log file; raise UserError if it is missing, unreadable or
    holds no ``caffe train``/``caffe test`` results."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        raise UserError(path, "log file not found") from None
    except IsADirectoryError:
        raise UserError(path, "is a folder, not a log file") from None
    except OSError as e:
        raise UserError(path, f"cannot read log ({e.strerror})") from None
    log = parse_text(text, path)
    if log.kind is None:
        raise UserError(path, "no 'caffe train' or 'caffe test' results in this log "
                        "(no 'Iteration N ..., loss =', 'Test net output' or 'Batch' lines)")
    return log


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
