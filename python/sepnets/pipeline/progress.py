"""The runner's progress display: one compact line per displayed iteration
(step, iteration/max, loss, last test top-1, iterations/s, ETA), read with
the project's one Caffe log parser fed line by line
(:class:`sepnets.caffeio.log.LogStream`), so a line costs the same at
iteration 10 and at iteration 80,000 and the numbers follow the same rules
as the result tables.
"""
import math
import os
import sys
import time

from ..caffeio.log import LogStream, parse_log
from ..errors import UserError


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
    """Feed it Caffe's output lines (:meth:`feed`); it writes progress lines."""

    def __init__(self, step, max_iter, log_path, out=None):
        self.step = step
        self.max_iter = max_iter
        self.out = out or sys.stdout
        self.tty = hasattr(self.out, "isatty") and self.out.isatty()
        self.stream = LogStream(log_path)
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
        # the solver's own lines carry everything shown (data layers and
        # net set-up log from other files)
        if "solver.cpp:" not in line:
            return
        event, it, _src = self.stream.feed(line)
        if event == "display":
            self.testing = None
            self._show(it)
            return
        if event == "testing":
            self.testing = it
        elif self.testing is not None and event not in ("test_output", "test_loss"):
            # a test ended with no display line after it (the last one): show
            # it; on a terminal the line is rewritten anyway
            it, self.testing = self.testing, None
            if self.tty or it >= self.max_iter:
                self._show(it)

    def _show(self, it):
        now = time.monotonic()
        if self.first is None:
            self.first = (now, it)
        loss = self.stream.last("loss")
        test = self.stream.test_top1() or self.prev_test
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
