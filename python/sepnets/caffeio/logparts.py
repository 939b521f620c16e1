"""Two parts of the Caffe log parser (:mod:`.log`), kept apart so that each
module stays readable: the time line (which caffe process logged a line,
and wall-clock seconds that do not count the gaps between a killed run and
its resumption), and the summary lines of ``caffe test``.
"""
import datetime
import math
import re

from .logdata import Evaluation

_NUM = r"([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|inf|infinity)|-?nan\S*)"
_LOSSMSG = r"(?: \(\* (\S+) = \S+ loss\))?"
_RUNNING_FOR = re.compile(r"^Running for (\d+) iterations\.$")
_BATCH = re.compile(r"^Batch (\d+), (.+?) = " + _NUM + r"$", re.I)
_CAFFE_TEST_LOSS = re.compile(r"^Loss: " + _NUM + r"$", re.I)
_SUMMARY_OUT = re.compile(r"^(\S+) = " + _NUM + _LOSSMSG + r"$", re.I)


def _float(text):
    t = text.strip().lower()
    if "nan" in t:
        return math.nan
    return float(t)


class _Timeline:
    """Runs (caffe processes) and their wall-clock seconds; the parser's
    base class, which sets the fields these methods use."""

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



class _CaffeTestLines:
    """The ``caffe test`` lines: ``Running for N``, ``Batch i, name = v``,
    then the ``Loss:`` / ``name = mean`` summary."""

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
