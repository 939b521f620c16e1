"""Running the real ``caffe`` binary for the experiment runner so that an
interrupted step costs at most one snapshot interval and leaves nothing behind.

* Caffe's glog output is appended line by line to the step's log as it comes,
  so a killed run leaves a real, readable log that the next run appends to
  (the log parser separates the runs).
* The child stays in the runner's process group (killing the group kills
  both) and gets SIGKILL from the kernel if the runner itself is SIGKILLed
  (``PR_SET_PDEATHSIG``), so no orphan keeps training into the same folder.
  On Ctrl-C or SIGTERM the child gets SIGINT, which ``caffe train`` answers
  by snapshotting the current iteration and stopping.
* OpenMP threads wait passively (unless ``OMP_WAIT_POLICY`` is set), which
  keeps Caffe fast on cores shared with other processes.
* A snapshot is usable only if its solverstate was written completely (Caffe
  writes the caffemodel first, then the solverstate, neither atomically), so
  the resume point is the newest snapshot whose two files both check out.
"""
import glob
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time

from . import REPO_ROOT
from .caffe_log import parse_log, parse_text
from .errors import UserError

_SNAP_RE = re.compile(r"_iter_(\d+)\.solverstate$")
_DISPLAY_RE = re.compile(r"\] Iteration (\d+)(?: \([^)]*\))?, loss = ")
_TESTING_RE = re.compile(r"\] Iteration (\d+), Testing net \(#")
_SNAPSHOT_LINE = "Snapshotting to binary proto file "
# seconds the child may take to snapshot and exit after SIGINT
STOP_GRACE_S = 120


class Interrupted(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C."""


def _raise_interrupted(signum, frame):
    raise Interrupted()


def install_sigterm():
    """Turn SIGTERM into an exception so the child is stopped cleanly."""
    signal.signal(signal.SIGTERM, _raise_interrupted)


def _die_with_parent():
    """In the child, before exec: be killed when the runner dies."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)          # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def shown(path):
    """A path as printed: relative to the current folder when below it."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def caffe_path(path):
    """How a path is written for Caffe (run from the repository root):
    relative to the root when inside it, absolute otherwise."""
    path = os.path.abspath(path)
    rel = os.path.relpath(path, REPO_ROOT)
    return path if rel == ".." or rel.startswith(".." + os.sep) else rel


def from_caffe_path(path):
    return path if os.path.isabs(path) else os.path.join(REPO_ROOT, path)


# ------------------------------------------------------------------ snapshots

def snapshot_iterations(prefix):
    """Iterations N that have a ``<prefix>_iter_N.solverstate``, newest first."""
    found = []
    for p in glob.glob(glob.escape(prefix) + "_iter_*.solverstate"):
        m = _SNAP_RE.search(p)
        if m:
            found.append(int(m.group(1)))
    return sorted(found, reverse=True)


def snapshot_files(prefix, it):
    return f"{prefix}_iter_{it}.caffemodel", f"{prefix}_iter_{it}.solverstate"


def model_is_complete(path, layer_names=()):
    """The caffemodel parses and holds every named layer (a file cut at a
    layer boundary still parses, but misses the last layers)."""
    from .model_size import caffe_pb2
    from google.protobuf.message import DecodeError
    try:
        with open(path, "rb") as f:
            data = f.read()
        model = caffe_pb2().NetParameter()
        model.ParseFromString(data)
    except (OSError, DecodeError, RuntimeError, ValueError):
        return False
    have = {layer.name for layer in model.layer}
    return bool(have) and all(n in have for n in layer_names) and \
        any(layer.blobs for layer in model.layer)


def state_is_complete(path, it):
    """The solverstate parses, is for iteration `it`, and ends with its last
    field (current_step, written last by the SGD solvers)."""
    from .model_size import caffe_pb2
    from google.protobuf.message import DecodeError
    try:
        with open(path, "rb") as f:
            data = f.read()
        st = caffe_pb2().SolverState()
        st.ParseFromString(data)
    except (OSError, DecodeError, RuntimeError, ValueError):
        return False
    return st.iter == it and len(st.history) > 0 and st.HasField("current_step")


def latest_snapshot(prefix, layer_names=()):
    """(iteration, caffemodel, solverstate) of the newest usable snapshot, or None."""
    for it in snapshot_iterations(prefix):
        model, state = snapshot_files(prefix, it)
        if state_is_complete(state, it) and model_is_complete(model, layer_names):
            return it, model, state
    return None


def prune_snapshots(prefix, keep, protect=()):
    """Delete all but the `keep` newest snapshots (0: keep all). The newest
    may be still being written, so at least two are always kept."""
    if keep <= 0:
        return []
    its = snapshot_iterations(prefix)
    models = []
    for p in glob.glob(glob.escape(prefix) + "_iter_*.caffemodel"):
        m = re.search(r"_iter_(\d+)\.caffemodel$", p)
        if m:
            models.append(int(m.group(1)))
    newest = sorted(set(its) | set(models), reverse=True)
    removed = []
    for it in newest[max(keep, 2):]:
        if it in protect:
            continue
        for f in snapshot_files(prefix, it):
            try:
                os.remove(f)
                removed.append(f)
            except FileNotFoundError:
                pass
    return removed


# ------------------------------------------------------------------ test subset

def lmdb_entries(path):
    import lmdb
    try:
        with lmdb.open(path, readonly=True, lock=False, subdir=True) as env:
            return env.stat()["entries"]
    except lmdb.Error as e:
        raise UserError(path, f"cannot read LMDB ({e})") from None


def lmdb_subset(src, dst, n):
    """Copy n records spread evenly over the LMDB `src` (every k-th, in key
    order) into a new LMDB `dst`, records unchanged.

    Why: a test of fewer batches than the test set reads its first records,
    and a test set stored class by class would then measure one class."""
    import lmdb
    from .fileio import atomic_path
    total = lmdb_entries(src)
    wanted = {(i * total) // n for i in range(n)}
    with lmdb.open(src, readonly=True, lock=False) as env, env.begin() as txn:
        picked = [(k, v) for i, (k, v) in enumerate(txn.cursor()) if i in wanted]
    size = sum(len(k) + len(v) for k, v in picked)
    with atomic_path(dst, is_dir=True) as tmp:
        with lmdb.open(tmp, map_size=2 * size + (1 << 24)) as out:
            with out.begin(write=True) as txn:
                for k, v in picked:
                    txn.put(k, v)
    return len(picked)


# ------------------------------------------------------------------ progress

def _fmt_eta(sec):
    if sec is None or not math.isfinite(sec):
        return "-"
    sec = int(round(sec))
    if sec >= 3600:
        return f"{sec // 3600}h{sec // 60 % 60:02d}m"
    return f"{sec // 60}:{sec % 60:02d}"


def _fmt(v, digits=4):
    if v is None:
        return "-"
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    return f"{v:.{digits}f}"


class TrainProgress:
    """One compact line per displayed iteration: step, iteration/max, loss,
    last test top-1, iterations/s and ETA, from the solver's log lines
    (parsed with :mod:`sepnets.caffe_log`)."""

    def __init__(self, step, max_iter, log_path, out=None):
        self.step = step
        self.max_iter = max_iter
        self.out = out or sys.stdout
        self.tty = hasattr(self.out, "isatty") and self.out.isatty()
        self.lines = []
        self.first = None          # (time, iteration) of this run's first display
        self.last_len = 0
        self.prev_test = None      # (iteration, top-1) of earlier runs
        self.testing = None        # iteration of the test being logged
        if os.path.isfile(log_path):
            try:
                acc = parse_log(log_path).accuracy()
                if acc.top1 is not None:
                    self.prev_test = (acc.iteration, acc.top1)
            except UserError:
                pass

    def feed(self, line):
        if "solver.cpp:" not in line:
            return
        self.lines.append(line)
        m = _DISPLAY_RE.search(line)
        if m:
            self.testing = None
            self._show(int(m.group(1)))
            return
        m = _TESTING_RE.search(line)
        if m:
            self.testing = int(m.group(1))
        elif self.testing is not None and "Test net output" not in line \
                and "Test loss" not in line:
            # a test ended with no display line after it (the last one): show
            # it; on a terminal the line is rewritten anyway
            it, self.testing = self.testing, None
            if self.tty or it >= self.max_iter:
                self._show(it)

    def _show(self, it):
        now = time.monotonic()
        if self.first is None:
            self.first = (now, it)
        log = parse_text("\n".join(self.lines) + "\n")
        loss = log.last_value("loss")
        acc = log.accuracy()
        test = (acc.iteration, acc.top1) if acc.top1 is not None else self.prev_test
        rate = None
        t0, i0 = self.first
        if it > i0 and now > t0:
            rate = (it - i0) / (now - t0)
        eta = (self.max_iter - it) / rate if rate else None
        text = (f"[{self.step}] iter {it}/{self.max_iter}  loss {_fmt(loss[1] if loss else None)}"
                f"  test top-1 {_fmt(test[1]) if test else '-'}"
                f"{f' (@{test[0]})' if test else ''}"
                f"  {f'{rate:.2f}' if rate else '-'} it/s  ETA {_fmt_eta(eta)}")
        self.write(text)

    def write(self, text):
        if self.tty:
            pad = max(0, self.last_len - len(text))
            self.out.write("\r" + text + " " * pad)
            self.last_len = len(text)
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def done(self):
        if self.tty and self.last_len:
            self.out.write("\n")
            self.out.flush()
            self.last_len = 0


# ------------------------------------------------------------------ running

def _last_error(text):
    """The most telling line of a failed Caffe run (a glog F/E line)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln[:1] in "FE" and "]" in ln:
            return ln.split("]", 1)[1].strip()
    return lines[-1] if lines else "no output"


def run_caffe(argv, log_path, on_line=None, on_snapshot=None):
    """Run a caffe command, appending its output to `log_path`.

    Returns the exit code. On KeyboardInterrupt (Ctrl-C, or SIGTERM through
    :func:`install_sigterm`) the child gets SIGINT and `STOP_GRACE_S` seconds
    to snapshot and exit (its output still goes to the log), then SIGKILL;
    the interrupt is re-raised.
    """
    env = dict(os.environ, GLOG_logtostderr="1", GLOG_minloglevel="0",
               GLOG_colorlogtostderr="0")
    # OpenMP threads (OpenBLAS, oneDNN) that spin while waiting make Caffe
    # 2-6x slower when another process shares the cores (measured on the
    # 2-core machine); sleeping costs little when the cores are free.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    with open(log_path, "ab") as log:
        try:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=REPO_ROOT, env=env,
                                    preexec_fn=_die_with_parent)
        except OSError as e:
            raise UserError(argv[0], f"cannot run Caffe ({e.strerror})") from None
        tail = []

        def pump():
            for raw in iter(proc.stdout.readline, b""):
                log.write(raw)
                log.flush()
                line = raw.decode("utf-8", errors="replace")
                tail.append(line)
                del tail[:-50]
                if on_snapshot and _SNAPSHOT_LINE in line:
                    on_snapshot(line)
                if on_line:
                    on_line(line)

        try:
            pump()
            rc = proc.wait()
        except KeyboardInterrupt:
            _stop(proc, pump)
            raise
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
    return rc, "".join(tail)


def _stop(proc, pump):
    """Ask the child to snapshot and stop (SIGINT), keep logging what it says,
    and kill it if it takes too long or on a second interrupt."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGINT)
        except ProcessLookupError:
            pass
    timer = threading.Timer(STOP_GRACE_S, proc.kill)
    timer.daemon = True
    timer.start()
    try:
        pump()
        proc.wait()
    except KeyboardInterrupt:
        proc.kill()
    finally:
        timer.cancel()


def check_rc(rc, tail, what, log_path):
    if rc != 0:
        why = f"signal {-rc}" if rc < 0 else f"exit {rc}"
        raise UserError(log_path, f"{what} failed ({why}): {_last_error(tail)}")
