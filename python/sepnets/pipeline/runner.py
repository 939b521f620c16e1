"""The paper's procedure as one resumable command, driving the real ``caffe``
binary so that every number in the result tables comes from a real Caffe log.

The runner is a loop over the step table (:mod:`.steps`): 1 train the
full-precision net, 2 binarize it with each scale and evaluate each with
``caffe test`` (the best top-1, ties: the lower loss, is fine-tuned), 3
fine-tune with the patterns fixed, and the optional steps (STE training,
BatchNorm statistics re-estimated, 5 BQ: 1x1/FC weights at 8 bits).

Everything a step writes lives under ``runs/<experiment>/<step>/`` (the
solver and train_val written for this run, the snapshots ``snap_iter_N``);
the logs, ``experiment.json`` and, once the run is finished, a copy of its
state under ``logs/<experiment>/`` (what it chose and measured, beside the
logs it comes from). ``runs/<experiment>/state.json`` (written atomically)
records finished steps, so a run killed at any point and started again with
the same options skips them and continues the interrupted one from its
newest complete snapshot. The schedule is checked against state.json: a
different one would mix two runs in one table.
"""
import contextlib
import json
import os
import sys
import time

from ..caffeio.proto import caffe_pb2, phase_of
from ..caffeio.run import caffe_path, from_caffe_path, shown
from ..errors import UserError
from ..fileio import check_output_dir, write_text_atomic
from ..report.paper import REFERENCE
from . import reuse as reuse_mod
from .bipattern import BiPatternMixin
from .bq import BQMixin
from .config import RESULT_KEYS
from .data import ensure_data
from .nets import read_run_net, run_net
from .steps import STEPS, optional_step_keys
from .training import TrainingMixin


class Runner(TrainingMixin, BiPatternMixin, BQMixin):
    def __init__(self, exp, sched, cfg, out=None):
        self.exp = exp
        self.sched = sched
        self.cfg = cfg
        self.gpu = cfg.gpu
        self.keep = cfg.keep_snapshots
        self.quick = cfg.quick
        self.data_dir = os.path.abspath(cfg.data)
        self.source = cfg.source
        self.runs = os.path.join(os.path.abspath(cfg.runs_dir), exp.name)
        self.logs = os.path.join(os.path.abspath(cfg.logs_dir), exp.name)
        self.state_path = os.path.join(self.runs, "state.json")
        self.out = out or sys.stdout
        self.state = None
        self.ste = cfg.ste

    # ---- output and state
    def say(self, msg):
        self.out.write(msg + "\n")
        self.out.flush()

    def load_state(self):
        if os.path.isfile(self.state_path):
            try:
                with open(self.state_path) as f:
                    state = json.load(f)
            except (OSError, ValueError) as e:
                raise UserError(self.state_path, f"unreadable run state ({e}); remove it to "
                                "start over") from None
            old = state.get("schedule", {})
            started = set(state.get("steps", {}))
            optional = optional_step_keys()
            for k in RESULT_KEYS:
                if k in optional and not started & set(optional[k]):
                    continue
                if k in old and old[k] != self.sched.get(k):
                    raise UserError(self.state_path, f"this run was started with {k} = "
                                    f"{old[k]}, not {self.sched.get(k)}; rerun with the same "
                                    "options, or use other --runs-dir/--logs-dir folders")
            state["schedule"] = dict(old, **self.sched)
        else:
            state = {"experiment": self.exp.name, "schedule": dict(self.sched), "steps": {}}
        self.state = state
        if getattr(self.cfg, "reuse", None):
            reuse_mod.take_steps(self)
        self.save_state()

    def save_state(self):
        self.state["updated"] = time.strftime("%Y-%m-%d %H:%M:%S")
        write_text_atomic(self.state_path, json.dumps(self.state, indent=2) + "\n")

    def step_state(self, step):
        return self.state["steps"].setdefault(step, {})

    def write_meta(self, **extra):
        path = os.path.join(self.logs, "experiment.json")
        meta = {}
        if os.path.isfile(path):
            try:
                with open(path) as f:
                    meta = json.load(f)
            except (OSError, ValueError):
                meta = {}
        label = self.exp.label + (" (quick)" if self.quick else "")
        meta.update(model=label, name=self.exp.name, dataset=self.exp.dataset,
                    full_net=self.exp.full.name, schedule=self.sched,
                    written_by="tools/run_experiment.py")
        ref = None if self.quick else REFERENCE.get(self.exp.full.name)
        if self.quick:
            meta["quick"] = True        # a smoke run: the comparisons leave it out
        else:
            meta.pop("quick", None)
        if ref:
            meta["reference"] = ref
        else:
            meta.pop("reference", None)
        reused = reuse_mod.reused_logs(self)
        if reused:
            meta["reused_logs"] = reused
        meta.update(extra)
        write_text_atomic(path, json.dumps(meta, indent=2) + "\n")

    # ---- nets
    def catalog_net(self, entry):
        net = run_net(read_run_net(entry.train_val), self.data_dir, self.sched.get("batch"),
                      self.sched.get("bn_fraction"))
        pb2 = caffe_pb2()
        for layer in net.layer:
            if layer.type == "Data" and phase_of(layer) == pb2.TEST:
                n = self.sched["test_iter"] * layer.data_param.batch_size
                sub = self.test_subset(from_caffe_path(layer.data_param.source), n)
                if sub:
                    layer.data_param.source = caffe_path(sub)
        return net

    def test_subset(self, src, n):
        """An LMDB of n test records spread over the test set when the tests
        read fewer than all of them (see :func:`lmdb_subset`), else None."""
        from ..data.datum_lmdb import lmdb_count, lmdb_subset
        total = lmdb_count(src)
        if n >= total:
            return None
        dst = os.path.join(self.runs, f"test_subset_{n}_lmdb")
        if os.path.isdir(dst) and lmdb_count(dst) == n:
            return dst
        lmdb_subset(src, dst, n)
        self.say(f"data: tests read {n} of the {total} test images, every "
                 f"{total / n:g}th of {shown(src)}: {shown(dst)}")
        return dst

    # ---- results
    def write_results(self, quiet=False):
        from ..report import parse_logs, plot_logs, results
        try:
            exp = results.load_experiment(self.logs)
            if not exp.logs:
                return None
            parse_logs.write_experiment(exp)
            png = plot_logs.plot_experiment(exp, os.path.join(self.logs, plot_logs.FIGURE_NAME))
        except UserError as e:
            self.say(f"warning: results not written: {e}")
            return None
        if not quiet:
            self.say("")
            self.say(parse_logs.table([exp]).rstrip("\n"))
            self.say("")
            self.say(f"wrote {shown(os.path.join(self.logs, results.RESULTS_NAME))} "
                     f"and {shown(png)}")
        return exp

    def record_state(self):
        """The finished run's state beside its logs: what it chose and
        measured stays with the logs when runs/ (snapshots) is gone."""
        write_text_atomic(os.path.join(self.logs, "state.json"),
                          json.dumps(self.state, indent=2) + "\n")

    def finished_elsewhere(self):
        """True (and says so) when the logs record this run as finished but
        its run folder has no state: a finished run on a new machine (its kit
        was removed when it finished, runs/ is not committed). Training it
        again would replace the committed logs with a new run's, so the
        runner stops here; moving the logs away (or another --logs-dir)
        starts a new run."""
        record = os.path.join(self.logs, "state.json")
        if os.path.isfile(self.state_path) or not os.path.isfile(record):
            return False
        try:
            with open(record) as f:
                finished = json.load(f).get("finished")
        except (OSError, ValueError) as e:
            raise UserError(record, f"unreadable record of a finished run ({e})") from None
        if not finished:
            return False
        self.say(f"finished on {finished}: its record is {shown(record)} and its logs are "
                 f"beside it; nothing to run (to train it again, move {shown(self.logs)} "
                 "away or pass another --logs-dir)")
        return True

    def run(self):
        exp, s = self.exp, self.sched
        self.say(f"experiment {exp.name} ({exp.label}, {exp.dataset}): runs in "
                 f"{shown(self.runs)}, logs in {shown(self.logs)}")
        self.say(f"schedule: full {s['iters']} + fine-tune {s['finetune_iters']} iterations"
                 + (f" + STE {s['ste_iters']}" if self.ste else "")
                 + (f" (base_lr {s['ste_lr'] or 'of the solver'}, pattern lr_mult x"
                    f"{s['ste_lr_mult'] or 1:g})" if self.ste else "")
                 + f", batch {s['batch'] or 'as in the prototxt'}, test {s['test_iter']} "
                 f"batches every {s['test_interval']}, snapshot every {s['snapshot']}"
                 f", sweep {s['sweep']}"
                 + (f", BatchNorm moving average {s['bn_fraction']}"
                    if s.get("bn_fraction") else ""))
        # one line, before the data step, if --runs-dir/--logs-dir cannot hold folders
        check_output_dir(self.runs, create=False)
        check_output_dir(self.logs, create=False)
        if self.finished_elsewhere():
            return None
        ensure_data(exp, self.data_dir, self.source, self.say)
        os.makedirs(self.runs, exist_ok=True)
        with _lock(self.runs):
            self.load_state()
            os.makedirs(self.logs, exist_ok=True)
            self.write_meta()
            done = {}
            until = getattr(self.cfg, "until", None)
            try:
                for step in STEPS:
                    if step.enabled(self):
                        step.run(self, done)
                    if step.name == until:
                        self.say(f"stopped after {until} (--until); run the same command "
                                 "without --until to continue")
                        self.save_state()
                        return self.write_results()
            except KeyboardInterrupt:
                self.say(f"\nstopped; run the same command again to continue (state: "
                         f"{shown(self.state_path)})")
                raise
            self.state["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
            self.save_state()
            self.record_state()
            from .resume import remove_kit
            remove_kit(self)
            return self.write_results()


@contextlib.contextmanager
def _lock(folder):
    import fcntl
    path = os.path.join(folder, ".lock")
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            who = f.read().strip()
            raise UserError(folder, f"another run_experiment.py is running this experiment"
                            f"{f' (pid {who})' if who else ''}") from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        yield

