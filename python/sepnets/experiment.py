"""The paper's procedure as one resumable command, driving the real ``caffe``
binary so that every number in the result tables comes from a real Caffe log.

For an experiment (a full-precision net of the catalog and its pattern
variants) the runner does:

1. ``1_full``: ``caffe train`` of the full-precision net;
2. ``2_bipattern``: binarize its final model with the mean scale and with
   each offset of the sweep (:mod:`sepnets.binarize`), and evaluate each with
   ``caffe test`` right away (``2_bipattern_<scale>.log``); the best top-1
   (ties: the lower loss) is the one fine-tuned, as the release tuned its
   offset on the validation data;
3. ``3_refined``: ``caffe train --weights`` of the pattern net from that
   binarized model, patterns fixed (the catalog's fine-tune solver): MEAN
   scale on ``<net>-pattern-mean`` (alpha learned), an offset on the stock
   frozen convolutions of ``<net>-fix-pattern``;
4. ``4_ste`` (``--ste``): the pattern net trained with the straight-through
   estimator from the full-precision model.

Everything a step writes lives under ``runs/<experiment>/<step>/`` (the
solver and train_val written for this run, the snapshots ``snap_iter_N``);
the logs and ``experiment.json`` under ``logs/<experiment>/``, the layout
:mod:`sepnets.results` reads. ``runs/<experiment>/state.json`` (written
atomically) records finished steps, so a run killed at any point and started
again with the same options skips them and continues the interrupted one from
its newest complete snapshot. The schedule is checked against state.json: a
different one would mix two runs in one table.

Why the schedule differs from the release's (80k iterations): on a 2-core CPU
a ResNet-20 iteration at batch 128 takes seconds, so the CIFAR default is 8000
+ 4000 iterations with the learning-rate steps at the release's 60 % and 80 %.
"""
import contextlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass

from google.protobuf import text_format

from . import REPO_ROOT
from .caffe_env import caffe_tool
from .cli import parser
from .errors import UserError
from .experiment_steps import (TrainProgress, caffe_path, check_rc, from_caffe_path,
                               install_sigterm, latest_snapshot, lmdb_entries, lmdb_subset,
                               model_is_complete, prune_snapshots, run_caffe, shown,
                               snapshot_files)
from .fileio import write_bytes_atomic, write_text_atomic

STEP_FULL, STEP_BIPATTERN, STEP_REFINED, STEP_STE = "1_full", "2_bipattern", "3_refined", "4_ste"
#: --bn-recalibrate: the BatchNorm statistics of step 1's / 3's / 4's final model re-estimated.
STEP_FULL_BN, STEP_REFINED_BN, STEP_STE_BN = "1b_full_bn", "3b_refined_bn", "4b_ste_bn"
MEAN = "mean"
DEFAULT_SWEEP = "0.02:0.09:0.01"

# The CIFAR-10 schedule of this project's real run (see the module docstring);
# ImageNet nets keep their solvers' numbers (None: from the solver/prototxt).
SCHEDULES = {
    "cifar10": dict(iters=8000, finetune_iters=4000, batch=128, snapshot=500,
                    test_interval=500, test_iter=None, display=50),
    "imagenet": dict(iters=None, finetune_iters=None, batch=None, snapshot=2000,
                     test_interval=None, test_iter=None, display=None),
}
# A few minutes on 2 cores: enough for accuracies clearly above chance.
# BatchNorm's running statistics follow the last ~20 batches instead of ~1000
# (0.999): after 600 iterations the default still averages in the first,
# untrained ones, and after binarization those of the full-precision net.
QUICK = dict(iters=600, finetune_iters=200, batch=32, snapshot=50, test_interval=100,
             test_iter=10, display=10, bn_fraction=0.95)
# Schedule fields that change the results: a rerun must use the same.
# (Intervals of tests, snapshots and progress lines may change.)
_RESULT_KEYS = ("iters", "finetune_iters", "ste_iters", "batch", "test_iter", "sweep",
                "finetune_scale", "bn_fraction", "bn_stats", "ste_lr", "ste_lr_mult",
                "bn_recalibrate")
# Those of optional steps matter only once such a step has started: a finished
# run may still get --ste or --bn-recalibrate added.
_OPTIONAL_STEP_KEYS = {"ste_iters": (STEP_STE,), "ste_lr": (STEP_STE,),
                       "ste_lr_mult": (STEP_STE,),
                       "bn_recalibrate": (STEP_FULL_BN, STEP_REFINED_BN, STEP_STE_BN)}

# The release README's "Ref" column (the ResNet paper's top-1 on CIFAR-10).
REFERENCE = {"cifar10-resnet20": {"top1": 0.9125}, "cifar10-resnet32": {"top1": 0.9249},
             "cifar10-resnet44": {"top1": 0.9283}, "cifar10-resnet56": {"top1": 0.9303}}


# ------------------------------------------------------------------ experiments

@dataclass
class Experiment:
    name: str
    full: object                 # catalog Entry, kind full
    mean: object                 # pattern entry, scale_mode MEAN
    fix: object = None           # fix-pattern entry (offsets), if the catalog has one
    offset_entry: object = None  # pattern entry, scale_mode OFFSET
    selection: str = None

    @property
    def dataset(self):
        return self.full.dataset

    @property
    def release_offset(self):
        for e in (self.fix, self.offset_entry):
            if e is not None and e.offset is not None:
                return e.offset
        return None

    @property
    def label(self):
        f = self.full
        if f.family == "resnet":
            return f"ResNet-{f.depth}"
        if f.family == "googlenet":
            return f"GoogLeNet {self.selection}"
        if f.family == "sepnet":
            return "SEP-Net"
        return f.title.split(" (")[0]


def _experiment_name(parent, selection):
    if parent.family == "sepnet":
        return "sepnet"
    return f"{parent.name}-{selection}" if selection else parent.name


def experiments(entries=None):
    """{name: Experiment} for every full net of the catalog with pattern variants."""
    from .netgen import catalog
    entries = catalog.catalog() if entries is None else entries
    by = {e.name: e for e in entries}
    groups = {}
    for e in entries:
        if e.kind == "full" or e.parent not in by:
            continue
        name = _experiment_name(by[e.parent], e.selection)
        g = groups.setdefault(name, dict(full=by[e.parent], selection=e.selection))
        if e.kind == "fix-pattern":
            g["fix"] = e
        elif e.scale_mode == "MEAN":
            g["mean"] = e
        else:
            g["offset_entry"] = e
    return {n: Experiment(name=n, **g) for n, g in groups.items() if g.get("mean")}


# ------------------------------------------------------------------ files

def _pb2():
    from .model_size import caffe_pb2
    return caffe_pb2()


def reset_batchnorm_stats(model_path, out_path):
    """Write a copy of a caffemodel whose BatchNorm running statistics are
    emptied (mean, variance and Caffe's scale factor all 0).

    After binarization the full-precision statistics no longer describe the
    activations. Caffe's moving average (fraction 0.999, its scale factor
    saturated at about 1000 after a long run) forgets them only over thousands
    of iterations, and the test net uses them all along: in the real ResNet-20
    run, fine-tuning reached 86% training accuracy while the test net, still
    normalising with stale statistics, scored 30%. With the scale factor at 0
    Caffe re-estimates the statistics from the fine-tuning batches alone."""
    pb2 = _pb2()
    model = pb2.NetParameter()
    with open(model_path, "rb") as f:
        model.ParseFromString(f.read())
    reset = 0
    for layer in model.layer:
        if layer.type == "BatchNorm":
            for blob in layer.blobs:
                blob.data[:] = [0.0] * len(blob.data)
                blob.double_data[:] = [0.0] * len(blob.double_data)
            reset += 1
    write_bytes_atomic(out_path, model.SerializeToString())
    return reset


def read_net(path):
    from .model_size import read_prototxt
    return read_prototxt(from_caffe_path(path))


def read_solver(path):
    s = _pb2().SolverParameter()
    path = from_caffe_path(path)
    try:
        with open(path) as f:
            text_format.Merge(f.read(), s)
    except OSError as e:
        raise UserError(path, f"cannot read solver ({e.strerror})") from None
    except text_format.ParseError as e:
        raise UserError(path, f"not a valid Caffe solver ({e})") from None
    return s


def _header(what, by):
    return (f"# {what}\n# Written by {by} for this run; paths are relative "
            "to the repository root (caffe runs there).\n")


def write_message(path, msg, what, by="tools/run_experiment.py"):
    write_text_atomic(path, _header(what, by) + text_format.MessageToString(msg))


def divisor_at_most(n, k):
    """The largest divisor of n that is <= k (so that a test falls on max_iter)."""
    for d in range(max(1, min(k, n)), 0, -1):
        if n % d == 0:
            return d
    return 1


def run_solver(src, net_path, max_iter, sched, prefix, gpu=None, test_first=True,
               base_lr=None):
    """The catalog's solver with this run's schedule: max_iter, the
    learning-rate steps scaled with it, test/snapshot/display intervals and
    the snapshot prefix; the rest (momentum, decay, policy, and base_lr
    unless `base_lr` is given) kept.

    test_first=False skips the test at iteration 0: before any training,
    BatchNorm's global statistics are still zero and the test net outputs
    NaN, which Caffe's Accuracy layer counts as 100 % correct."""
    pb2 = _pb2()
    s = read_solver(src)
    old_max = s.max_iter or max_iter
    for f in ("train_net", "test_net", "net_param", "train_net_param"):
        s.ClearField(f)
    del s.test_net_param[:]
    s.net = caffe_path(net_path)
    factor = max_iter / old_max
    if s.stepvalue:
        steps = sorted({min(max_iter, max(1, int(round(v * factor)))) for v in s.stepvalue})
        del s.stepvalue[:]
        s.stepvalue.extend(steps)
    if s.HasField("stepsize"):
        s.stepsize = max(1, int(round(s.stepsize * factor)))
    s.max_iter = max_iter
    if base_lr is not None:
        s.base_lr = base_lr
    test_iter = sched.get("test_iter") or (s.test_iter[0] if s.test_iter else None)
    if test_iter:
        n = max(1, len(s.test_iter))
        del s.test_iter[:]
        s.test_iter.extend([test_iter] * n)
    interval = sched.get("test_interval") or s.test_interval or max_iter
    s.test_interval = divisor_at_most(max_iter, interval)
    s.snapshot = sched.get("snapshot") or s.snapshot or max_iter
    s.snapshot_prefix = caffe_path(prefix)
    s.snapshot_after_train = True
    s.test_initialization = test_first
    if sched.get("display"):
        s.display = sched["display"]
    if gpu is None:
        s.solver_mode = pb2.SolverParameter.CPU
        s.ClearField("device_id")
    else:
        s.solver_mode = pb2.SolverParameter.GPU
        s.device_id = gpu
    return s


def _phase_of(layer):
    phases = {r.phase for r in layer.include if r.HasField("phase")}
    return phases.pop() if len(phases) == 1 else None


def run_net(net, data_dir, batch=None, bn_fraction=None):
    """A copy of a catalog net for this run: its data paths under `data_dir`
    (the catalog's ``data/...`` paths), the TRAIN batch size `batch` and
    BatchNorm's moving_average_fraction `bn_fraction` (None: as it is)."""
    pb2 = _pb2()
    out = pb2.NetParameter()
    out.CopyFrom(net)
    for layer in out.layer:
        if bn_fraction is not None and layer.type == "BatchNorm":
            layer.batch_norm_param.moving_average_fraction = bn_fraction
        if not layer.HasField("data_param"):
            continue
        dp = layer.data_param
        dp.source = caffe_path(data_path(dp.source, data_dir))
        if layer.transform_param.HasField("mean_file"):
            layer.transform_param.mean_file = caffe_path(
                data_path(layer.transform_param.mean_file, data_dir))
        if batch and _phase_of(layer) == pb2.TRAIN:
            dp.batch_size = batch
    return out


def data_path(path, data_dir):
    """Where a catalog data path (``data/<set>/...``, relative to the
    repository root) is for this run."""
    if os.path.isabs(path):
        return path
    parts = path.split("/", 1)
    if parts[0] == "data" and len(parts) == 2:
        return os.path.join(data_dir, parts[1])
    return os.path.join(REPO_ROOT, path)


def train_layer_names(net):
    pb2 = _pb2()
    from .model_size import in_phase
    return [layer.name for layer in net.layer if in_phase(layer, pb2.TRAIN)]


def ste_net(mean_net, full_net, layers, lr_mult=1.0):
    """The MEAN pattern net with train_mode STE: W learns again (the full
    net's lr/decay for it, its lr_mult times `lr_mult`) and there is no
    alpha blob (recomputed each pass).

    The layer's STE gradient of a latent weight is alpha * dL/dW_eff, and
    alpha = mean|W| is ~0.04-0.14 in a trained ResNet-20: at the solver's
    learning rate the patterns barely move (1.6 % of the signs flipped in
    8000 iterations at 0.01). `lr_mult` ~ 1/alpha gives them back the step
    size of full-precision weights."""
    pb2 = _pb2()
    out = pb2.NetParameter()
    out.CopyFrom(mean_net)
    full_params = {layer.name: list(layer.param) for layer in full_net.layer}
    chosen = set(layers)
    for layer in out.layer:
        if layer.name not in chosen or layer.type != "BinaryPatternConvolution":
            continue
        layer.binary_pattern_param.train_mode = pb2.BinaryPatternParameter.STE
        w = pb2.ParamSpec(lr_mult=1, decay_mult=1)
        if full_params.get(layer.name):
            w.CopyFrom(full_params[layer.name][0])
        w.lr_mult = w.lr_mult * lr_mult
        n = 2 if layer.convolution_param.bias_term else 1
        specs = [w] + list(layer.param)[1:n]
        del layer.param[:]
        layer.param.extend(specs)
    return out


def scale_label(scale):
    return MEAN if scale == MEAN else f"offset{scale:g}"


def parse_scale(text):
    if text in ("best", MEAN):
        return text
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (v > 0 and math.isfinite(v)):
        raise UserError("--finetune-scale", f"'{text}' is not best, mean or an offset > 0")
    return round(v, 10)


# ------------------------------------------------------------------ data

def shared_cifar_source():
    d = os.environ.get("SEPNETS_SHARED_DIR")
    if d:
        p = os.path.join(d, "data", "cifar10-jpeg.tar.gz")
        if os.path.isfile(p):
            return p
    return None


def ensure_data(exp, data_dir, source, say):
    """Prepare CIFAR-10 if its files are missing; name the missing ImageNet
    file and the command that makes it."""
    from .netgen.catalog import DATASETS
    ds = DATASETS[exp.dataset]
    missing = [p for p in ds.paths() if not os.path.exists(data_path(p, data_dir))]
    if not missing:
        return
    first = data_path(missing[0], data_dir)
    if exp.dataset == "cifar10":
        from .data import cifar10
        src = source or shared_cifar_source()
        out = os.path.join(data_dir, "cifar10")
        say(f"data: {shown(first)} is missing; preparing CIFAR-10 version 3 in "
            f"{shown(out)} from {src or 'the official download'} (once)")
        t0 = time.time()
        cifar10.prepare(src, out, version=3, progress=lambda m: say(f"  {m}"))
        say(f"data: ready in {time.time() - t0:.0f} s")
        still = [p for p in ds.paths() if not os.path.exists(data_path(p, data_dir))]
        if still:
            raise UserError(data_path(still[0], data_dir), "still missing after preparing "
                            "CIFAR-10 version 3")
        return
    out = os.path.dirname(data_path(ds.train_source, data_dir))
    raise UserError(first, f"{exp.dataset} data not found; make it with: python "
                    f"tools/prepare_imagenet.py --train ILSVRC2012/train --val ILSVRC2012/val "
                    f"--val-labels val.txt --out {shown(out)}")


# ------------------------------------------------------------------ the run

class Runner:
    def __init__(self, exp, sched, args, out=None):
        self.exp = exp
        self.sched = sched
        self.gpu = args.gpu
        self.keep = args.keep_snapshots
        self.quick = args.quick
        self.data_dir = os.path.abspath(args.data)
        self.source = args.source
        self.runs = os.path.join(os.path.abspath(args.runs_dir), exp.name)
        self.logs = os.path.join(os.path.abspath(args.logs_dir), exp.name)
        self.state_path = os.path.join(self.runs, "state.json")
        self.out = out or sys.stdout
        self.state = None
        self.ste = args.ste

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
            for k in _RESULT_KEYS:
                if k in _OPTIONAL_STEP_KEYS and not started & set(_OPTIONAL_STEP_KEYS[k]):
                    continue
                if k in old and old[k] != self.sched.get(k):
                    raise UserError(self.state_path, f"this run was started with {k} = "
                                    f"{old[k]}, not {self.sched.get(k)}; rerun with the same "
                                    "options, or use other --runs-dir/--logs-dir folders")
            state["schedule"] = dict(old, **self.sched)
        else:
            state = {"experiment": self.exp.name, "schedule": dict(self.sched), "steps": {}}
        self.state = state
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
        if ref:
            meta["reference"] = ref
        else:
            meta.pop("reference", None)
        meta.update(extra)
        write_text_atomic(path, json.dumps(meta, indent=2) + "\n")

    # ---- nets
    def catalog_net(self, entry):
        net = run_net(read_net(entry.train_val), self.data_dir, self.sched.get("batch"),
                      self.sched.get("bn_fraction"))
        pb2 = _pb2()
        for layer in net.layer:
            if layer.type == "Data" and _phase_of(layer) == pb2.TEST:
                n = self.sched["test_iter"] * layer.data_param.batch_size
                sub = self.test_subset(from_caffe_path(layer.data_param.source), n)
                if sub:
                    layer.data_param.source = caffe_path(sub)
        return net

    def test_subset(self, src, n):
        """An LMDB of n test records spread over the test set when the tests
        read fewer than all of them (see :func:`lmdb_subset`), else None."""
        total = lmdb_entries(src)
        if n >= total:
            return None
        dst = os.path.join(self.runs, f"test_subset_{n}_lmdb")
        if os.path.isdir(dst) and lmdb_entries(dst) == n:
            return dst
        lmdb_subset(src, dst, n)
        self.say(f"data: tests read {n} of the {total} test images, every "
                 f"{total / n:g}th of {shown(src)}: {shown(dst)}")
        return dst

    def pattern_setup(self, scale):
        """(net, pattern layers, fine-tune solver) for a scale."""
        exp = self.exp
        if scale == MEAN:
            return self.catalog_net(exp.mean), list(exp.mean.pattern_layers), \
                exp.mean.finetune_solver
        if exp.fix is not None:
            return self.catalog_net(exp.fix), list(exp.fix.pattern_layers), \
                exp.fix.finetune_solver
        from .binarize import pattern_net
        layers = list(exp.mean.pattern_layers)
        return pattern_net(self.catalog_net(exp.full), layers, scale), layers, \
            exp.mean.finetune_solver

    def candidates(self):
        spec = self.sched["sweep"]
        if spec == "none":
            offsets = []
        elif spec == "release":
            offsets = [self.exp.release_offset] if self.exp.release_offset else []
        else:
            from .binarize import parse_sweep
            offsets = parse_sweep(spec)
        scales = [MEAN] + offsets
        fs = self.sched["finetune_scale"]
        if fs not in ("best", MEAN) and fs not in scales:
            scales.append(fs)
        return scales

    # ---- steps
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
        if snap and snap[0] >= max_iter and _log_complete(log_path):
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
        if not snap or snap[0] < max_iter or not _log_complete(log_path):
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
        start = self.bn_reset_copy(step, model, "final")
        return self.train_step(step, f"BatchNorm statistics of {of} re-estimated", net,
                               solver_src, n, weights=start, test_first=False, base_lr=0.0)

    def bipattern_step(self, full_model):
        """Binarize with each scale, evaluate each with caffe test; return the chosen scale."""
        from .binarize import pattern_model
        from .caffe_log import parse_log
        from .model_size import read_caffemodel
        step = STEP_BIPATTERN
        st = self.step_state(step)
        d = os.path.join(self.runs, step)
        if st.get("done") and os.path.isfile(os.path.join(d, f"{st['chosen_label']}.caffemodel")):
            self.say(f"[{step}] done earlier: fine-tuning {st['chosen_label']}")
            return _scale_from(st["chosen"])
        os.makedirs(d, exist_ok=True)
        st["status"] = "running"
        evals = st.setdefault("evaluations", {})
        model = None
        scales = self.candidates()
        self.say(f"[{step}] binarizing {shown(full_model)} with "
                 + ", ".join(scale_label(s) for s in scales) + "; caffe test on "
                 f"{self.sched['test_iter']} batches each")
        for scale in scales:
            label = scale_label(scale)
            net, layers, _ = self.pattern_setup(scale)
            proto = os.path.join(d, f"{label}.prototxt")
            weights = os.path.join(d, f"{label}.caffemodel")
            log_path = os.path.join(self.logs, f"2_bipattern_{label}.log")
            write_message(proto, net, f"{self.exp.name}, BiPattern {label}: net")
            if not (model_is_complete(weights) and _eval_complete(log_path)):
                if model is None:
                    model = read_caffemodel(full_model)
                have = {layer.name for layer in model.layer if layer.blobs}
                lost = [n for n in layers if n not in have]
                if lost:
                    raise UserError(full_model, f"has no weights for pattern layer '{lost[0]}'")
                binary = pattern_model(model, net, layers, scale)
                write_bytes_atomic(weights, binary.SerializeToString())
                argv = [caffe_tool("caffe"), "test", f"-model={caffe_path(proto)}",
                        f"-weights={caffe_path(weights)}",
                        f"-iterations={self.sched['test_iter']}"]
                if self.gpu is not None:
                    argv.append(f"-gpu={self.gpu}")
                t0 = time.time()
                rc, tail = run_caffe(argv, log_path)
                check_rc(rc, tail, "caffe test", log_path)
                took = f", {time.time() - t0:.1f} s"
            else:
                took = ", done earlier"
            log = parse_log(log_path)
            acc = log.accuracy()
            ev = log.evaluation
            evals[label] = dict(scale=scale, log=os.path.basename(log_path),
                                model=caffe_path(weights), top1=acc.top1, top5=acc.top5,
                                loss=ev.loss, batches=ev.batches)
            self.save_state()
            self.say(f"[{step}] {label:>11}: top-1 {_num(acc.top1)}  top-5 {_num(acc.top5)}  "
                     f"loss {_num(ev.loss)}  ({ev.batches} batches{took})")
        chosen = choose_scale(scales, evals, self.sched["finetune_scale"])
        label = scale_label(chosen)
        st.update(status="done", done=True, chosen=chosen, chosen_label=label,
                  rule=("best top-1 after binarization (ties: lower loss)"
                        if self.sched["finetune_scale"] == "best" else "--finetune-scale"))
        self.save_state()
        self.write_meta(bipattern_log=f"2_bipattern_{label}.log", finetuned_scale=label)
        self.say(f"[{step}] fine-tuning {label} ({st['rule']})")
        self.write_results(quiet=True)
        return chosen

    # ---- results
    def write_results(self, quiet=False):
        from . import plots, results
        try:
            exp = results.load_experiment(self.logs)
            if not exp.logs:
                return None
            results.write_experiment(exp)
            png = plots.plot_experiment(exp, os.path.join(self.logs, plots.FIGURE_NAME))
        except UserError as e:
            self.say(f"warning: results not written: {e}")
            return None
        if not quiet:
            self.say("")
            self.say(results.table([exp]).rstrip("\n"))
            self.say("")
            self.say(f"wrote {shown(os.path.join(self.logs, results.RESULTS_NAME))} "
                     f"and {shown(png)}")
        return exp

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
        ensure_data(exp, self.data_dir, self.source, self.say)
        os.makedirs(self.runs, exist_ok=True)
        with _lock(self.runs):
            self.load_state()
            os.makedirs(self.logs, exist_ok=True)
            self.write_meta()
            try:
                full = self.train_step(STEP_FULL, "full precision", self.catalog_net(exp.full),
                                       exp.full.solver, s["iters"])
                if s.get("bn_recalibrate"):
                    self.recalibrate_step(STEP_FULL_BN, STEP_FULL, self.catalog_net(exp.full),
                                          exp.full.solver, full)
                chosen = self.bipattern_step(full)
                net, _, solver = self.pattern_setup(chosen)
                label = scale_label(chosen)
                binary = os.path.join(self.runs, STEP_BIPATTERN, f"{label}.caffemodel")
                reset = s.get("bn_stats", "keep") == "reset"
                if reset:
                    binary = self.bn_reset_copy(STEP_REFINED, binary, label)
                refined = self.train_step(STEP_REFINED, f"fine-tuning fixed patterns ({label})",
                                          net, solver, s["finetune_iters"], weights=binary,
                                          test_first=False if reset else None)
                if s.get("bn_recalibrate"):
                    self.recalibrate_step(STEP_REFINED_BN, STEP_REFINED, net, solver, refined)
                if self.ste:
                    net = ste_net(self.catalog_net(exp.mean), self.catalog_net(exp.full),
                                  exp.mean.pattern_layers, s.get("ste_lr_mult") or 1.0)
                    start = self.bn_reset_copy(STEP_STE, full, "full") if reset else full
                    ste = self.train_step(STEP_STE, "STE training of the pattern net", net,
                                          exp.mean.finetune_solver, s["ste_iters"],
                                          weights=start, test_first=False if reset else None,
                                          base_lr=s.get("ste_lr"))
                    if s.get("bn_recalibrate"):
                        self.recalibrate_step(STEP_STE_BN, STEP_STE, net,
                                              exp.mean.finetune_solver, ste)
            except KeyboardInterrupt:
                self.say(f"\nstopped; run the same command again to continue (state: "
                         f"{shown(self.state_path)})")
                raise
            self.state["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
            self.save_state()
            return self.write_results()


def choose_scale(scales, evals, rule):
    if rule != "best":
        return rule
    best, key = MEAN, None
    for i, s in enumerate(scales):
        e = evals.get(scale_label(s))
        if not e or e["top1"] is None or not math.isfinite(e["top1"]):
            continue
        loss = e["loss"] if e["loss"] is not None and math.isfinite(e["loss"]) else math.inf
        k = (e["top1"], -loss, -i)
        if key is None or k > key:
            best, key = s, k
    return best


def _scale_from(value):
    return value if value == MEAN else float(value)


def _num(v):
    return "-" if v is None else f"{v:.4f}"


def _log_complete(path):
    from .caffe_log import parse_log
    if not os.path.isfile(path):
        return False
    try:
        return parse_log(path).complete
    except UserError:
        return False


def _eval_complete(path):
    from .caffe_log import parse_log
    if not os.path.isfile(path):
        return False
    try:
        log = parse_log(path)
    except UserError:
        return False
    return log.kind == "test" and log.evaluation is not None and log.evaluation.complete


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


# ------------------------------------------------------------------ command line

def _positive(name):
    def conv(text):
        try:
            v = int(text)
        except ValueError:
            v = 0
        if v < 1:
            raise UserError(name, f"'{text}' must be a whole number >= 1")
        return v
    return conv


def _positive_float(name):
    def conv(text):
        try:
            v = float(text)
        except ValueError:
            v = math.nan
        if not (v > 0 and math.isfinite(v)):
            raise UserError(name, f"'{text}' must be a number > 0")
        return v
    return conv


def _fraction(text):
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not 0 < v < 1:
        raise UserError("--bn-fraction", f"'{text}' must be a number between 0 and 1")
    return v


def _sweep_arg(text):
    if text not in ("release", "none"):
        from .binarize import parse_sweep
        parse_sweep(text)
    return text


def schedule(exp, a):
    """The effective schedule: dataset defaults, --quick, explicit options,
    then the catalog's solvers/prototxts for what is still open."""
    s = dict(SCHEDULES[exp.dataset])
    if a.quick:
        s.update(QUICK)
    for k in ("iters", "finetune_iters", "ste_iters", "batch", "snapshot", "test_interval",
              "test_iter", "display", "bn_fraction"):
        v = getattr(a, k, None)
        if v is not None:
            s[k] = v
    full = read_solver(exp.full.solver)
    fine = read_solver(exp.mean.finetune_solver)
    s["iters"] = s.get("iters") or full.max_iter
    s["finetune_iters"] = s.get("finetune_iters") or fine.max_iter
    s["ste_iters"] = s.get("ste_iters") or s["finetune_iters"]
    s["test_iter"] = s.get("test_iter") or (full.test_iter[0] if full.test_iter else 1)
    s["test_interval"] = s.get("test_interval") or full.test_interval or s["iters"]
    s["snapshot"] = s.get("snapshot") or full.snapshot or s["iters"]
    s["display"] = s.get("display") or full.display or 0
    s["sweep"] = a.sweep
    s["finetune_scale"] = a.finetune_scale
    s["bn_stats"] = a.bn_stats
    s["ste_lr"] = getattr(a, "ste_lr", None)
    s["ste_lr_mult"] = getattr(a, "ste_lr_mult", None)
    s["bn_recalibrate"] = getattr(a, "bn_recalibrate", None)
    return s


def build_parser():
    p = parser(
        "run_experiment.py",
        "Run one SEP-Nets experiment end to end with the real caffe binary:\n"
        "  1. train the full-precision net              -> logs/<exp>/1_full.log\n"
        "  2. binarize its k x k filters (mean scale and the offset sweep) and\n"
        "     evaluate each with caffe test ('BiPattern') -> 2_bipattern_<scale>.log\n"
        "  3. fine-tune the best one with fixed patterns  -> 3_refined.log\n"
        "  4. optionally (--ste) train the pattern net with the straight-through\n"
        "     estimator from the full-precision model     -> 4_ste.log\n"
        "then write logs/<exp>/results.md and training_curves.png.\n\n"
        "Resumable: killed at any point and started again with the same options, it\n"
        "skips finished steps and continues the interrupted one from its newest\n"
        "snapshot (runs/<exp>/<step>/snap_iter_N). Missing CIFAR-10 data is prepared\n"
        "(from --source, else $SEPNETS_SHARED_DIR/data/cifar10-jpeg.tar.gz, else the\n"
        "official download).\n\n"
        "CIFAR-10 defaults: 8000 + 4000 iterations at batch 128, base_lr 0.1 then 0.01,\n"
        "learning rate x0.1 at 60 % and 80 %, test on the 10,000 test images and\n"
        "snapshot every 500 iterations. ImageNet nets: their solvers' schedule.\n"
        f"--quick: {QUICK['iters']} + {QUICK['finetune_iters']} iterations at batch "
        f"{QUICK['batch']}, test {QUICK['test_iter']} batches of 100 (minutes on 2 cores).",
        ["python tools/run_experiment.py --list",
         "python tools/run_experiment.py cifar10-resnet20 --quick --logs-dir logs/quick "
         "--runs-dir runs/quick",
         "python tools/run_experiment.py cifar10-resnet20 --iters 8000 --finetune-iters 4000 "
         "--batch 128",
         "python tools/run_experiment.py cifar10-resnet56 --ste --gpu 0",
         "python tools/run_experiment.py cifar10-resnet20 --ste --ste-lr-mult 20",
         "python tools/run_experiment.py cifar10-resnet20 --sweep release --finetune-scale mean",
         "python tools/run_experiment.py cifar10-resnet32 --source cifar-10-binary.tar.gz "
         "--data /scratch/data",
         "python tools/run_experiment.py googlenet-3x3 --gpu 0 --data /datasets  "
         "# needs DIR/ilsvrc12/"])
    p.add_argument("name", nargs="?", metavar="NAME",
                   help="experiment to run (see --list), e.g. cifar10-resnet20, googlenet-3x3, "
                        "sepnet")
    p.add_argument("--list", action="store_true", help="list the experiments and exit")
    p.add_argument("--quick", action="store_true",
                   help="a schedule of a few minutes (the README's main job); explicit "
                        "options below override it")
    p.add_argument("--iters", type=_positive("--iters"), metavar="N",
                   help="full-precision training iterations (CIFAR-10 default 8000)")
    p.add_argument("--finetune-iters", type=_positive("--finetune-iters"), metavar="N",
                   help="fine-tuning iterations (CIFAR-10 default 4000)")
    p.add_argument("--ste-iters", type=_positive("--ste-iters"), metavar="N",
                   help="STE training iterations (default: --finetune-iters)")
    p.add_argument("--batch", type=_positive("--batch"), metavar="N",
                   help="training batch size of every step (CIFAR-10 default 128; ImageNet: "
                        "the prototxt's)")
    p.add_argument("--test-iter", type=_positive("--test-iter"), metavar="N",
                   help="test batches per evaluation (default: the solver's, i.e. the whole "
                        "test set)")
    p.add_argument("--test-interval", type=_positive("--test-interval"), metavar="N",
                   help="iterations between tests (CIFAR-10 default 500; lowered to divide "
                        "the step's iterations)")
    p.add_argument("--snapshot", type=_positive("--snapshot"), metavar="N",
                   help="iterations between snapshots: the most a kill can lose "
                        "(CIFAR-10 default 500, ImageNet 2000)")
    p.add_argument("--display", type=_positive("--display"), metavar="N",
                   help="iterations between progress lines (CIFAR-10 default 50)")
    p.add_argument("--bn-fraction", type=_fraction, metavar="F",
                   help="BatchNorm moving_average_fraction for this run (default: the "
                        "prototxt's, 0.999; --quick: 0.95)")
    p.add_argument("--bn-stats", choices=("reset", "keep"), default="reset",
                   help="BatchNorm running statistics at the start of fine-tuning (and of "
                        "--ste training): reset "
                        "(default; re-estimated from the fine-tuning batches) or keep the "
                        "full-precision ones, as a plain 'caffe train --weights' does")
    p.add_argument("--bn-recalibrate", type=_positive("--bn-recalibrate"), metavar="N",
                   help="after steps 1, 3 and 4, re-estimate the final models' BatchNorm "
                        "statistics over N training batches (caffe train at base_lr 0; "
                        "weights unchanged) and test them: 1b_full_bn.log, "
                        "3b_refined_bn.log, 4b_ste_bn.log (default: off)")
    p.add_argument("--keep-snapshots", type=int, default=0, metavar="N",
                   help="keep only the N newest snapshots of a step (default 0: keep all)")
    p.add_argument("--sweep", type=_sweep_arg, default=DEFAULT_SWEEP,
                   metavar="START:STOP:STEP|release|none",
                   help="offsets evaluated after binarization besides the mean scale "
                        f"(default {DEFAULT_SWEEP}; release: the release's offset only; "
                        "none: mean scale only)")
    p.add_argument("--finetune-scale", type=parse_scale, default="best",
                   metavar="best|mean|X",
                   help="which binarized model to fine-tune (default best: the best "
                        "BiPattern top-1)")
    p.add_argument("--ste", action="store_true",
                   help="also run step 4: STE training of the pattern net")
    p.add_argument("--ste-lr", type=_positive_float("--ste-lr"), metavar="LR",
                   help="base_lr of the STE step (default: the fine-tuning solver's, "
                        "0.01 on CIFAR-10)")
    p.add_argument("--ste-lr-mult", type=_positive_float("--ste-lr-mult"), metavar="M",
                   help="multiply the lr_mult of the latent pattern weights in the STE "
                        "step by M (default 1): their gradient carries a factor alpha = "
                        "mean|W| (~0.1), so ~10-20 lets the signs move")
    p.add_argument("--gpu", type=int, metavar="N", help="GPU id for caffe (default: CPU)")
    p.add_argument("--data", default=os.path.join(REPO_ROOT, "data"), metavar="DIR",
                   help="folder of the prepared data sets (DIR/cifar10/v3, DIR/ilsvrc12; "
                        "default: the repository's data/)")
    p.add_argument("--source", metavar="CIFAR_SOURCE",
                   help="CIFAR-10 source to prepare missing data from (archive or folder; "
                        "default: $SEPNETS_SHARED_DIR/data/cifar10-jpeg.tar.gz if present, "
                        "else the official download)")
    p.add_argument("--runs-dir", default=os.path.join(REPO_ROOT, "runs"), metavar="DIR",
                   help="snapshots, per-run solvers and state.json (default: runs)")
    p.add_argument("--logs-dir", default=os.path.join(REPO_ROOT, "logs"), metavar="DIR",
                   help="Caffe logs, experiment.json and results (default: logs)")
    return p


def list_experiments(exps, data_dir, out):
    from .netgen.catalog import DATASETS
    for name, e in exps.items():
        ds = DATASETS[e.dataset]
        ready = all(os.path.exists(data_path(p, data_dir)) for p in ds.paths())
        offset = f"release offset {e.release_offset:g}" if e.release_offset else "mean scale only"
        data = "data ready" if ready else ("data prepared on first run" if e.dataset == "cifar10"
                                           else "data missing")
        out.write(f"{name:24} {e.label:22} {e.dataset:9} {offset:22} {data}\n")


def main(argv=None):
    p = build_parser()
    a = p.parse_args(argv)
    exps = experiments()
    if a.list:
        list_experiments(exps, os.path.abspath(a.data), sys.stdout)
        return 0
    if not a.name:
        raise UserError("NAME", "give an experiment to run (see --list)")
    if a.name not in exps:
        raise UserError(a.name, "unknown experiment; known: " + ", ".join(exps))
    if a.keep_snapshots < 0:
        raise UserError("--keep-snapshots", "must be >= 0")
    exp = exps[a.name]
    install_sigterm()
    Runner(exp, schedule(exp, a), a).run()
    return 0

