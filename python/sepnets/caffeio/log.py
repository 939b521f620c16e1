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
import re

from ..errors import UserError
from .logparts import _LOSSMSG, _NUM, _CaffeTestLines, _float, _Timeline
from .logdata import (Accuracy, CaffeLog, Evaluation, accuracy_k,  # noqa: F401
                      csv_text, pick_accuracy, test_column)

# glog: [IWEF]mmdd hh:mm:ss.uuuuuu threadid file:line] msg (newer glog: yyyymmdd)
_GLOG = re.compile(
    r"^\s*([IWEF])(\d{8}|\d{4}) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?\s+(\S+)\s+"
    r"([^\s:\]]+):(\d+)\]\s?(.*)$")
# A glog prefix in the middle of a line: a killed run's cut line with the next
# run's first line appended to it.
_GLOG_INSIDE = re.compile(
    r"(?<=\S)(?=[IWEF](?:\d{8}|\d{4}) \d\d:\d\d:\d\d\.\d+\s+\S+\s+[^\s:\]]+:\d+\])")
_HEADER = re.compile(r"^Log file created at: (\d{4})/(\d\d)/(\d\d) ")

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
_ITER_FILE = re.compile(r"_iter_(\d+)\.(?:caffemodel|solverstate)(?:\.h5)?$")

# Source files whose lines come from the thread of Caffe's root solver (data
# layers log from prefetch threads, other solvers of multi-GPU runs are quiet).
_MAIN_FILES = {"caffe.cpp", "solver.cpp", "sgd_solver.cpp"}


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


class _Parser(_Timeline, _CaffeTestLines):
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
        # streaming: column -> (iteration, value) of the newest row holding it,
        # and what the last line was (see LogStream)
        self.latest = {}
        self.event = None

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
            self.latest = {}
            for i in sorted(self.rows):
                for c, v in self.rows[i].items():
                    self.latest[c] = (i, v)
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
        it = row["iteration"]
        if column not in self.latest or self.latest[column][0] <= it:
            self.latest[column] = (it, value)

    # --- lines --------------------------------------------------------
    def feed(self, lineno, line, glued=False):
        """Take one line; return (event, iteration, source file) of it, event
        one of display, testing, test_output, test_loss or None."""
        self.event = None
        src = self._feed(lineno, line, glued)
        kind, it = self.event or (None, None)
        return kind, it, src

    def _feed(self, lineno, line, glued=False):
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
        return src

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
            self.event = ("display", it)
            return
        m = _TESTING.match(msg)
        if m:
            it, net = int(m.group(1)), int(m.group(2))
            self._row(it, dt, lineno)
            self.test_at = (it, net)
            self.test_index = {}
            self.log.kind = "train"
            self.event = ("testing", it)
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
            self.event = ("test_output", it)
            return
        m = _TEST_LOSS.match(msg)
        if m and self.test_at is not None:
            it, net = self.test_at
            col = "test_loss" if net == 0 else f"test#{net}_loss"
            self._set(self._row(it, dt, lineno), col, _float(m.group(1)))
            self.event = ("test_loss", it)
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


class LogStream:
    """The same parser fed one line at a time, as ``caffe train`` writes them,
    for a progress display: each line costs the same however long the log
    is (re-parsing the whole text on every line would be quadratic), and the
    display reads the numbers with the same rules as the result tables."""

    def __init__(self, path="<stream>"):
        self._p = _Parser(path, 2001)
        self._lineno = 0

    def feed(self, line):
        """Take one line; return (event, iteration, source file) of its last
        part (see :meth:`_Parser.feed`)."""
        self._lineno += 1
        out = (None, None, None)
        for no, part, glued in _split_glued([(self._lineno, line.rstrip("\r\n"))]):
            out = self._p.feed(no, part, glued)
        return out

    def last(self, column):
        """(iteration, value) of the newest row holding `column`, or None."""
        return self._p.latest.get(column)

    def test_top1(self, net=0):
        """(iteration, top-1) of the newest test, output picked by
        :func:`pick_accuracy` as :meth:`CaffeLog.accuracy` does, or None."""
        log = self._p.log
        pre = test_column(net, "")
        weights = {c[len(pre):]: w for c, w in log.loss_weights.items() if c.startswith(pre)}
        name = pick_accuracy(list(log.test_names.get(net, [])), weights, 1)
        return self.last(test_column(net, name)) if name else None


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

