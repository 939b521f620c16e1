"""The nets and solvers one run writes for Caffe: the catalog's files with this
run's schedule, data paths, batch size and BatchNorm settings, the STE
variant of the pattern net, and the binarization scales a run tries.

Why the solvers are rewritten rather than used as generated: on a 2-core CPU
the release's 80k iterations are out of reach, so the learning-rate steps
are scaled with ``max_iter`` (the release's 60 % and 80 %), and tests must
fall on the last iteration so that every table's number is a final one.
"""
import math
import os

from .. import REPO_ROOT
from ..caffeio.proto import caffe_pb2, in_phase, phase_of, read_prototxt, read_solver
from ..caffeio.run import caffe_path, from_caffe_path
from ..errors import UserError

MEAN = "mean"


def read_run_net(path):
    """A net prototxt given as Caffe writes paths (relative to the root)."""
    return read_prototxt(from_caffe_path(path))


def read_run_solver(path):
    """A solver given as Caffe writes paths (relative to the root)."""
    return read_solver(from_caffe_path(path))


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
    pb2 = caffe_pb2()
    s = read_run_solver(src)
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


def data_path(path, data_dir):
    """Where a catalog data path (``data/<set>/...``, relative to the
    repository root) is for this run."""
    if os.path.isabs(path):
        return path
    parts = path.split("/", 1)
    if parts[0] == "data" and len(parts) == 2:
        return os.path.join(data_dir, parts[1])
    return os.path.join(REPO_ROOT, path)


def run_net(net, data_dir, batch=None, bn_fraction=None):
    """A copy of a catalog net for this run: its data paths under `data_dir`
    (the catalog's ``data/...`` paths), the TRAIN batch size `batch` and
    BatchNorm's moving_average_fraction `bn_fraction` (None: as it is)."""
    pb2 = caffe_pb2()
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
        if batch and phase_of(layer) == pb2.TRAIN:
            dp.batch_size = batch
    return out


def train_layer_names(net):
    pb2 = caffe_pb2()
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
    pb2 = caffe_pb2()
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


# ------------------------------------------------------------------ scales

def scale_label(scale):
    return MEAN if scale == MEAN else f"offset{scale:g}"


def scale_from(value):
    """A scale as state.json records it (``"mean"`` or a number)."""
    return value if value == MEAN else float(value)


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


def best_evaluation(labels, evals):
    """The label of the best evaluation: the best top-1 after binarization,
    ties broken by the lower loss, then by the earlier label (the mean scale
    first); None if none has a top-1. The one rule: the runner chooses with
    it, and the result tables use it too while step 2 is still running."""
    best, key = None, None
    for i, label in enumerate(labels):
        e = evals.get(label)
        if not e or e["top1"] is None or not math.isfinite(e["top1"]):
            continue
        loss = e["loss"] if e["loss"] is not None and math.isfinite(e["loss"]) else math.inf
        k = (e["top1"], -loss, -i)
        if key is None or k > key:
            best, key = label, k
    return best


def choose_scale(scales, evals, rule):
    """The scale step 3 fine-tunes: `rule` itself, or for ``best`` the best
    evaluation (:func:`best_evaluation`; the mean scale if none has a
    top-1). The runner records the choice in state.json; the result tables
    read it back from there."""
    if rule != "best":
        return rule
    labels = [scale_label(s) for s in scales]
    best = best_evaluation(labels, evals)
    return MEAN if best is None else scales[labels.index(best)]
