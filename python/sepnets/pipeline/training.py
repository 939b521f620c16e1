"""The runner's ``caffe train`` steps: run, resume from the newest snapshot,
or skip a finished one (its own, or one reused from another run); and the
BatchNorm work around them (emptied statistics before fine-tuning,
statistics re-estimated after training).
"""
import os
import time

from ..caffeio.env import caffe_tool
from ..caffeio.log import parse_log
from ..caffeio.proto import reset_batchnorm_stats, write_message
from ..caffeio.run import caffe_path, check_rc, from_caffe_path, run_caffe, shown
from ..caffeio.snapshots import (latest_snapshot, model_is_complete, prune_snapshots,
                                 snapshot_files)
from ..errors import UserError
from .nets import run_solver, train_layer_names
from .progress import TrainProgress


def log_complete(path):
    """The training log exists and its last run logged 'Optimization Done.'."""
    if not os.path.isfile(path):
        return False
    try:
        return parse_log(path).complete
    except UserError:
        return False


class TrainingMixin:
    def finished(self, step):
        """The final model of `step` if state.json says it is done and the
        model is there (reused steps: the other run's model), else None."""
        st = self.state["steps"].get(step, {})
        if not st.get("done"):
            return None
        if st.get("reused_from"):
            model = from_caffe_path(st["model"])
            if not os.path.isfile(model):
                raise UserError(model, f"missing: step {step} is reused from "
                                f"{st['reused_from']}, whose final model this is")
            self.say(f"[{step}] reused from {st['reused_from']}: {shown(model)}")
            return model
        final = snapshot_files(os.path.join(self.runs, step, "snap"), st.get("max_iter"))[0]
        if os.path.isfile(final):
            self.say(f"[{step}] done earlier: {shown(final)}")
            return final
        return None

    def bn_reset_copy(self, step, model, label):
        """A copy of `model` with its BatchNorm statistics emptied, in the
        step's folder: binarizing changes every activation's statistics, and
        Caffe's moving average would take thousands of iterations to forget
        the full-precision ones (the test accuracy lags the training)."""
        init = os.path.join(self.runs, step, f"{label}_bn_reset.caffemodel")
        if not model_is_complete(init):
            os.makedirs(os.path.dirname(init), exist_ok=True)
            n = reset_batchnorm_stats(model, init)
            self.say(f"[{step}] BatchNorm statistics of {n} layers emptied: {shown(init)}")
        return init

    def train_step(self, step, title, net, solver_src, max_iter, weights=None,
                   test_first=None, base_lr=None):
        """Run (or resume, or skip) one ``caffe train`` step; return its final model.

        A step from scratch (no weights) is not tested at iteration 0 (see
        :func:`run_solver`); a fine-tuning step is, which shows the accuracy
        it starts from, unless `test_first` is False (emptied BatchNorm
        statistics have nothing to test with yet)."""
        d = os.path.join(self.runs, step)
        prefix = os.path.join(d, "snap")
        log_path = os.path.join(self.logs, f"{step}.log")
        final = snapshot_files(prefix, max_iter)[0]
        st = self.step_state(step)
        if st.get("done") and st.get("reused_from"):
            return self.finished(step)
        if st.get("done") and os.path.isfile(final):
            self.say(f"[{step}] done earlier: {shown(final)}")
            return final
        os.makedirs(d, exist_ok=True)
        tv = os.path.join(d, "train_val.prototxt")
        write_message(tv, net, f"{self.exp.name}, {title}: train_val")
        solver_path = os.path.join(d, "solver.prototxt")
        solver = run_solver(solver_src, tv, max_iter, self.sched, prefix, self.gpu,
                            test_first=weights is not None if test_first is None
                            else test_first, base_lr=base_lr)
        write_message(solver_path, solver, f"{self.exp.name}, {title}: solver "
                      f"(from {solver_src})")
        names = train_layer_names(net)
        snap = latest_snapshot(prefix, names)
        if snap and snap[0] >= max_iter and log_complete(log_path):
            self.say(f"[{step}] outputs complete: {shown(final)}")
            return self._train_done(step, final, max_iter)
        argv = [caffe_tool("caffe"), "train", f"-solver={caffe_path(solver_path)}"]
        if snap:
            argv.append(f"-snapshot={caffe_path(snap[2])}")
            self.say(f"[{step}] {title}: resuming from iteration {snap[0]} of {max_iter} "
                     f"({shown(snap[2])})")
        else:
            if weights:
                argv.append(f"-weights={caffe_path(weights)}")
            self.say(f"[{step}] {title}: caffe train, {max_iter} iterations"
                     + (f" from {shown(weights)}" if weights else ""))
        if self.gpu is not None:
            argv.append(f"-gpu={self.gpu}")
        self.say(f"[{step}] log: {shown(log_path)}")
        st.update(status="running", log=os.path.basename(log_path), max_iter=max_iter,
                  resumed_from=(snap[0] if snap else None))
        self.save_state()
        progress = TrainProgress(step, max_iter, log_path, self.out)
        protect = {snap[0]} if snap else set()
        t0 = time.time()
        try:
            rc, tail = run_caffe(argv, log_path, on_line=progress.feed,
                                 on_snapshot=lambda _l: prune_snapshots(prefix, self.keep,
                                                                        protect))
        finally:
            progress.done()
        check_rc(rc, tail, "caffe train", log_path)
        snap = latest_snapshot(prefix, names)
        if not snap or snap[0] < max_iter or not log_complete(log_path):
            where = f" at iteration {snap[0]}" if snap else ""
            raise UserError(log_path, f"caffe train stopped{where} before iteration "
                            f"{max_iter}; run the same command again to continue")
        prune_snapshots(prefix, self.keep)
        self.say(f"[{step}] finished in {time.time() - t0:.0f} s: {shown(final)}")
        return self._train_done(step, final, max_iter)

    def _train_done(self, step, final, max_iter):
        st = self.step_state(step)
        st.update(status="done", done=True, model=caffe_path(final), max_iter=max_iter)
        self.save_state()
        self.write_results(quiet=True)
        return final

    def record_sign_flips(self, full, ste):
        """Keep in the log folder how many pattern signs STE changed (the full
        model against the STE-trained one, tools/compare_patterns.py's
        record); once: a finished run rerun finds it there. A side record: a
        pair of models it cannot compare is said in one line and the run goes
        on (its results do not depend on it)."""
        from ..compress.compare_patterns import RECORD, compare, write_record
        path = os.path.join(self.logs, RECORD)
        if os.path.isfile(path):
            return
        try:
            rows = compare(full, ste)
        except UserError as e:
            self.say(f"[4_ste] signs STE changed: not counted ({e})")
            return
        rec = write_record(path, rows, caffe_path(full), caffe_path(ste))
        self.say(f"[4_ste] signs STE changed: {rec['binary_flipped']:,} of "
                 f"{rec['binary_weights']:,} pattern weights "
                 f"({100 * rec['binary_fraction']:.2f} %), in {shown(path)}")

    def caffe_test(self, proto, weights, log_path):
        """``caffe test`` of `weights` in net `proto` over the run's test
        batches, logged to `log_path`: (accuracy, evaluation, seconds)."""
        argv = [caffe_tool("caffe"), "test", f"-model={caffe_path(proto)}",
                f"-weights={caffe_path(weights)}", f"-iterations={self.sched['test_iter']}"]
        if self.gpu is not None:
            argv.append(f"-gpu={self.gpu}")
        t0 = time.time()
        rc, tail = run_caffe(argv, log_path)
        check_rc(rc, tail, "caffe test", log_path)
        log = parse_log(log_path)
        return log.accuracy(), log.evaluation, time.time() - t0

    def recalibrate_step(self, step, of, net, solver_src, model):
        """Re-estimate the BatchNorm statistics of `model` (the final model of
        step `of`): ``caffe train`` at base_lr 0 for --bn-recalibrate
        iterations from a copy with the statistics emptied, then one test.

        The weights stay exactly as trained; only the running means and
        variances become an average over these training batches. Training
        that moves the weights fast until its last learning-rate drop (STE
        with a raised lr_mult) leaves Caffe's moving average (fraction 0.999:
        about the last 1000 iterations) describing weights that no longer
        exist, and the test net uses it."""
        n = self.sched["bn_recalibrate"]
        done = self.finished(step)
        if done:
            return done
        start = self.bn_reset_copy(step, model, "final")
        return self.train_step(step, f"BatchNorm statistics of {of} re-estimated", net,
                               solver_src, n, weights=start, test_first=False, base_lr=0.0)
