"""Running the real ``caffe`` binary (for the experiment runner and the tools) so that an
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
"""
import os
import signal
import subprocess
import threading

from .. import REPO_ROOT
from ..errors import UserError

#: The line of Caffe's solver after which a snapshot exists (for pruning).
SNAPSHOT_LINE = "Snapshotting to binary proto file "
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
                if on_snapshot and SNAPSHOT_LINE in line:
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
