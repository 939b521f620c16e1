"""Step 2 of the SEP-Nets procedure: turn the chosen k x k convolutions of a
trained model into binary patterns (the authors' unreleased quant_pattern.py).

Two forms exist because two Caffes exist:

* ``--scale mean`` (the paper's rule, default): B = sign(W) with sign(0) = +1
  and alpha_c = mean |W_c| per output filter. The selected layers become
  ``BinaryPatternConvolution`` (MEAN, FIXED) whose alpha is learned in the
  fine-tuning while the patterns stay frozen (W: lr_mult 0, decay_mult 0).
  The caffemodel's W is *baked* to alpha_c * sign(W_c): its signs are the
  patterns and every filter holds exactly two values, so the file is already
  the binary model (a stock Convolution loading it computes the same output),
  and the packed form restores it bit for bit. The latent weights stay in the
  input model.
* ``--offset X`` (the release's rule): every selected weight becomes +X
  (w >= 0) or -X, in stock Convolution layers frozen with lr_mult 0 /
  decay_mult 0, so unmodified Caffe fine-tunes it; ``--as-layer`` writes the
  same as BinaryPatternConvolution with scale_mode OFFSET. The release used
  w > 0 for +X; this uses w >= 0 like the layer, which differs only on
  weights that are exactly zero.

``--sweep`` replaces the release's hand tuning of X: every offset and the mean
scale are evaluated on the same cached validation batches, taken every k-th
record of the validation LMDB when the sweep reads only part of it.
"""
import math
import os

import numpy as np

from .cli import parser
from .errors import UserError
from .fileio import refuse_overwrite, write_bytes_atomic, write_text_atomic
from .model_size import (BPC, caffe_pb2, kernel_dims, kernel_label, model_arrays, net_from_model,
                         open_net, read_caffemodel, read_prototxt, set_blob, set_net_params,
                         blob_array, unique_layers, in_phase)

MEAN = "mean"


# ------------------------------------------------------------------ selection

def parse_kernel(spec):
    """'3x3' -> (3, 3); '5' -> (5, 5)."""
    parts = spec.lower().split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        dims = ()
    if not dims or len(dims) > 3 or min(dims) < 1:
        raise UserError("--filter", f"'{spec}' is not a kernel size; write it as KxK, e.g. 3x3")
    return dims * 2 if len(dims) == 1 else dims


def select_layers(net, path, filters=None, names=None, skip=()):
    """Names of the Convolution layers to binarize, in net order.

    By kernel size (`filters`, default: every kernel larger than 1x1) minus
    `skip`, or exactly `names`. Unknown names and filters that match nothing
    are errors, so a typo never silently binarizes nothing.
    """
    layers = unique_layers(net)
    by_name = {layer.name: layer for layer in layers}
    for n in list(names or []) + list(skip or []):
        if n not in by_name:
            raise UserError(path, f"has no layer named '{n}'")
    if names:
        for n in names:
            t = by_name[n].type
            if t == BPC:
                raise UserError(path, f"layer '{n}' is already a {BPC}")
            if t != "Convolution":
                raise UserError(path, f"layer '{n}' is {t}, not a Convolution; only "
                                      "convolutions are binarized")
        wanted = set(names)
        selected = [layer.name for layer in layers if layer.name in wanted]
    else:
        convs = [layer for layer in layers if layer.type == "Convolution"]
        if filters:
            kernels = {parse_kernel(f) for f in filters}
            selected = [c.name for c in convs if kernel_dims(c) in kernels]
        else:
            selected = [c.name for c in convs if max(kernel_dims(c)) > 1]
        if not selected:
            present = sorted({kernel_label(kernel_dims(c)) for c in convs})
            what = "--filter " + " ".join(filters) if filters else "the default (k x k, k > 1)"
            raise UserError(path, f"{what} matches no Convolution layer (kernels here: "
                                  f"{', '.join(present) or 'none'})")
    selected = [n for n in selected if n not in set(skip or ())]
    if not selected:
        raise UserError(path, "no layer left to binarize after --skip")
    return selected


# -------------------------------------------------------------- the numbers

def mean_scale(w):
    """alpha_c = mean |W_c|: the least-squares scale of sign(W_c) (paper, sec. 1)."""
    flat = np.asarray(w, dtype=np.float64).reshape(w.shape[0], -1)
    return np.abs(flat).mean(axis=1).astype(np.float32)


def bake(w, alpha):
    """alpha_c * sign(W_c) with sign(0) = +1 (the layer's rule), as float32."""
    w = np.asarray(w, dtype=np.float32)
    a = np.asarray(alpha, dtype=np.float32).reshape((-1,) + (1,) * (w.ndim - 1))
    return np.where(w >= 0, a, -a).astype(np.float32)


def scales_for(w, scale):
    """Per-filter alpha for a scale choice: MEAN or an offset value."""
    if scale == MEAN:
        return mean_scale(w)
    return np.full(w.shape[0], np.float32(scale), dtype=np.float32)


# ------------------------------------------------------- the written files

def _param_spec(pb2, base=None, lr=None, decay=None):
    spec = pb2.ParamSpec()
    if base is not None:
        spec.CopyFrom(base)
    if lr is not None:
        spec.lr_mult = lr
    if decay is not None:
        spec.decay_mult = decay
    return spec


def convert_layer_def(layer, scale, as_layer):
    """Rewrite one Convolution definition in place for fine-tuning with frozen
    patterns: W lr_mult 0 / decay_mult 0, bias as before, alpha lr_mult 1."""
    pb2 = caffe_pb2()
    old = list(layer.param)
    bias = layer.convolution_param.bias_term
    specs = [_param_spec(pb2, old[0] if old else None, 0, 0)]
    if bias:
        specs.append(_param_spec(pb2, old[1]) if len(old) > 1 else _param_spec(pb2, None, 1, 1))
    if scale == MEAN or as_layer:
        layer.type = BPC
        bp = layer.binary_pattern_param
        bp.Clear()
        bp.train_mode = pb2.BinaryPatternParameter.FIXED
        if scale == MEAN:
            bp.scale_mode = pb2.BinaryPatternParameter.MEAN
            specs.append(_param_spec(pb2, None, 1, 0))
        else:
            bp.scale_mode = pb2.BinaryPatternParameter.OFFSET
            bp.offset = float(scale)
        if max(kernel_dims(layer)) == 1:
            bp.allow_1x1 = True
    del layer.param[:]
    layer.param.extend(specs)


def pattern_net(net, selected, scale, as_layer=False):
    """A copy of the net definition with the selected layers converted."""
    out = caffe_pb2().NetParameter()
    out.CopyFrom(net)
    chosen = set(selected)
    for layer in out.layer:
        if layer.name in chosen:
            convert_layer_def(layer, scale, as_layer)
    return out


def pattern_model(model, new_net, selected, scale):
    """A copy of the model whose selected layers hold baked +/-alpha weights
    (and the alpha blob for MEAN); every other layer is left as it was."""
    pb2 = caffe_pb2()
    out = pb2.NetParameter()
    out.CopyFrom(model)
    defs = {layer.name: layer for layer in unique_layers(new_net)}
    chosen = set(selected)
    for layer in out.layer:
        if layer.name not in chosen or not layer.blobs:
            continue
        new_def = defs[layer.name]
        w = blob_array(layer.blobs[0], "Convolution", 0)
        alpha = scales_for(w, scale)
        bias = None
        if new_def.convolution_param.bias_term and len(layer.blobs) > 1:
            bias = pb2.BlobProto()
            bias.CopyFrom(layer.blobs[1])
        layer.CopyFrom(new_def)
        set_blob(layer.blobs.add(), bake(w, alpha))
        if bias is not None:
            layer.blobs.add().CopyFrom(bias)
        if new_def.type == BPC and scale == MEAN:
            set_blob(layer.blobs.add(), alpha)
    return out


# ------------------------------------------------------------------- sweeping

def parse_sweep(text):
    """'0.02:0.09:0.01' -> [0.02, 0.03, ..., 0.09] (both ends included)."""
    try:
        a, b, s = (float(x) for x in text.split(":"))
    except ValueError:
        raise UserError("--sweep", f"'{text}' is not START:STOP:STEP, e.g. 0.02:0.09:0.01") \
            from None
    if not (a > 0 and b >= a and s > 0 and all(map(math.isfinite, (a, b, s)))):
        raise UserError("--sweep", f"'{text}' needs 0 < START <= STOP and STEP > 0")
    n = int(math.floor((b - a) / s + 1e-9)) + 1
    if n > 1000:
        raise UserError("--sweep", f"'{text}' gives {n} offsets; use at most 1000")
    return [round(a + i * s, 10) for i in range(n)]


def _metric_blob(net, path, metric):
    """(blob, higher_is_better): the chosen metric, else the first top-1
    Accuracy of the TEST net, else its first loss."""
    pb2 = caffe_pb2()
    test = [layer for layer in net.layer if in_phase(layer, pb2.TEST)]
    if metric:
        if not any(metric in layer.top for layer in test):
            raise UserError(path, f"the TEST net has no blob '{metric}' (--metric)")
        loss = any(metric in layer.top and layer.type.endswith("Loss") for layer in test)
        return metric, not loss
    for layer in test:
        if layer.type == "Accuracy" and layer.accuracy_param.top_k == 1:
            return layer.top[0], True
    for layer in test:
        if layer.type.endswith("Loss"):
            return layer.top[0], False
    raise UserError(path, "the TEST net has no Accuracy or loss layer to rank the sweep by")


class CachedBatches:
    """Forward passes over the same validation batches for every candidate:
    the data layers run once per batch and their outputs are replayed."""

    def __init__(self, cnet, batches, path):
        names = list(cnet._layer_names)
        self.net = cnet
        bottoms = cnet.bottom_names
        first = next((i for i, n in enumerate(names) if bottoms[n]), None)
        if first is None or any(not bottoms[n] for n in names[first:]):
            raise UserError(path, "the TEST net must start with its data layers")
        sources = [cnet.layers[i].type for i in range(first)]
        if all(t == "Input" for t in sources):
            raise UserError(path, "the TEST net reads no data (Input layers only); pass "
                                  "--val-prototxt with a data layer")
        self.start = names[first]
        self.feed = [t for n in names[:first] for t in cnet.top_names[n]]
        self.cache = []
        for _ in range(batches):
            cnet.forward()
            self.cache.append({t: cnet.blobs[t].data.copy() for t in self.feed})

    def run(self, blobs):
        """{blob: list of per-batch copies} for the current weights."""
        out = {b: [] for b in blobs}
        for feed in self.cache:
            for t, v in feed.items():
                self.net.blobs[t].data[...] = v
            self.net.forward(start=self.start)
            for b in blobs:
                out[b].append(self.net.blobs[b].data.copy())
        return out

    @property
    def images(self):
        return sum(next(iter(f.values())).shape[0] for f in self.cache)


def spread_validation(val_net, batches, tmp):
    """A copy of `val_net` whose TEST LMDB Data layers read `batches` batches
    spread over their whole LMDB (every k-th record, copied under `tmp`)
    instead of its first records, and one note per layer changed.

    Why: a sweep on part of a validation set reads its first records, and a
    set stored class by class (like the CIFAR-10 test LMDB here) would then
    rank the scales on one or two classes."""
    from .experiment_steps import lmdb_entries, lmdb_subset
    pb2 = caffe_pb2()
    net = pb2.NetParameter()
    net.CopyFrom(val_net)
    notes = []
    for layer in net.layer:
        dp = layer.data_param
        if layer.type != "Data" or not in_phase(layer, pb2.TEST) or \
                dp.backend != pb2.DataParameter.LMDB or not os.path.isdir(dp.source):
            continue
        n, total = batches * dp.batch_size, lmdb_entries(dp.source)
        if n >= total:
            continue
        dst = os.path.join(tmp, f"{len(notes)}_lmdb")
        lmdb_subset(dp.source, dst, n)
        notes.append(f"{layer.name}: {n} of the {total} records of {dp.source}, "
                     f"every {total / n:g}th")
        dp.source = dst
    return net, notes


def sweep(val_net, val_path, arrays, model_path, selected, offsets, batches, metric=None):
    """Evaluate the full model, the mean scale and each offset on the same
    batches, spread over the validation set (:func:`spread_validation`).
    Returns (rows, best scale, metric blob, images, notes); rows are (label,
    scale, metric value, loss or None), the first row being the full-precision
    model."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="sepnets-sweep-") as tmp:
        val_net, notes = spread_validation(val_net, batches, tmp)
        return _sweep(val_net, val_path, arrays, model_path, selected, offsets, batches,
                      metric) + (notes,)


def _sweep(val_net, val_path, arrays, model_path, selected, offsets, batches, metric):
    blob, higher = _metric_blob(val_net, val_path, metric)
    pb2 = caffe_pb2()
    loss_blob = next((layer.top[0] for layer in val_net.layer
                      if in_phase(layer, pb2.TEST) and layer.type.endswith("Loss")), None)
    cnet = open_net(val_net, "TEST", val_path)
    for name in selected:
        if name not in cnet.params:
            raise UserError(val_path, f"the TEST net has no layer '{name}' to binarize")
        layer_type = cnet.layers[list(cnet._layer_names).index(name)].type
        if layer_type != "Convolution":
            raise UserError(val_path, f"layer '{name}' is {layer_type} in the validation net; "
                                      "it must be the stock Convolution of the trained model")
    set_net_params(cnet, arrays, model_path)
    data = CachedBatches(cnet, batches, val_path)
    wanted = [blob] + ([loss_blob] if loss_blob and loss_blob != blob else [])

    def evaluate():
        res = data.run(wanted)
        val = float(np.mean([np.asarray(v).ravel()[0] for v in res[blob]]))
        loss = (float(np.mean([np.asarray(v).ravel()[0] for v in res[loss_blob]]))
                if loss_blob else None)
        return val, loss

    rows = [("full precision", None) + evaluate()]
    for scale in [MEAN] + list(offsets):
        for name in selected:
            w = arrays[name][0]
            cnet.params[name][0].data[...] = bake(w, scales_for(w, scale))
        label = "mean |W| per filter" if scale == MEAN else f"offset {scale:g}"
        rows.append((label, scale) + evaluate())
    sign = 1 if higher else -1
    # rank by the metric, then by the lower loss; remaining ties: the earlier row
    best = max(rows[1:], key=lambda r: (sign * r[2], -r[3] if r[3] is not None else 0))
    return rows, best[1], blob, data.images


def format_sweep(rows, blob, best, images, batches):
    w = max(len(r[0]) for r in rows)
    lines = [f"{'scale'.ljust(w)}  {blob:>10}  {'loss':>10}"]
    for label, scale, val, loss in rows:
        mark = "  <- best" if scale is not None and scale == best else ""
        loss_s = f"{loss:10.4f}" if loss is not None else f"{'-':>10}"
        lines.append(f"{label.ljust(w)}  {val:10.4f}  {loss_s}{mark}")
    lines.append(f"({batches} batches, {images} images; ties go to the lower loss, then the "
                 "earlier row)")
    return "\n".join(lines)


# ------------------------------------------------------------------ command

def output_paths(output, model_path, scale):
    """(prototxt, caffemodel) for -o OUT (an extension on OUT is dropped)."""
    if output:
        stem = output
        for ext in (".caffemodel", ".prototxt"):
            if stem.endswith(ext):
                stem = stem[: -len(ext)]
    else:
        base = os.path.splitext(model_path)[0]
        stem = base + ("_pattern_mean" if scale == MEAN else f"_quant_{scale:g}")
    return stem + ".prototxt", stem + ".caffemodel"


def main(argv=None):
    p = parser(
        "quant_pattern.py",
        "Binarize the k x k convolutions of a trained Caffe model into binary patterns "
        "(step 2 of SEP-Nets): writes the pattern prototxt for fine-tuning and its "
        "caffemodel. Unselected layers are copied unchanged.",
        ["python tools/quant_pattern.py --model r20.caffemodel --prototxt r20.prototxt "
         "--filter 3x3 --skip conv1 -o r20_pattern",
         "python tools/quant_pattern.py --offset 0.06 --filter 3x3 5x5 --model "
         "bvlc_googlenet_quick_iter_600000.caffemodel --prototxt train_val.prototxt",
         "python tools/quant_pattern.py --model m.caffemodel --prototxt train_val.prototxt "
         "--sweep 0.02:0.09:0.01 --batches 20 -o m_best"])
    p.add_argument("--model", "--models", required=True, metavar="M.caffemodel",
                   help="the trained full-precision model (--models: the release's spelling)")
    p.add_argument("--prototxt", metavar="P.prototxt",
                   help="its net definition (train_val); default: the definition saved in "
                        "the model")
    sel = p.add_mutually_exclusive_group()
    sel.add_argument("--filter", nargs="+", metavar="KxK",
                     help="binarize Convolution layers with these kernels, e.g. 3x3 5x5 "
                          "(default: every kernel larger than 1x1)")
    sel.add_argument("--layers", nargs="+", metavar="NAME",
                     help="binarize exactly these Convolution layers")
    p.add_argument("--skip", nargs="+", default=[], metavar="NAME",
                   help="keep these layers full precision (e.g. conv1)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--scale", choices=[MEAN],
                     help="alpha = mean |W| per filter, as BinaryPatternConvolution "
                          "(the default)")
    how.add_argument("--offset", "--offeset", type=float, metavar="X",
                     help="the release's rule: weights become +X/-X in stock Convolution "
                          "layers frozen with lr_mult 0 (--offeset: the release's spelling)")
    how.add_argument("--sweep", metavar="START:STOP:STEP",
                     help="evaluate the mean scale and each offset on the TEST net's data and "
                          "keep the best, e.g. 0.02:0.09:0.01")
    p.add_argument("--as-layer", action="store_true",
                   help="with --offset/--sweep: write BinaryPatternConvolution scale_mode "
                        "OFFSET instead of stock Convolution layers")
    p.add_argument("--val-prototxt", metavar="V.prototxt",
                   help="sweep: net whose TEST phase reads the validation data (default: "
                        "--prototxt)")
    p.add_argument("--batches", type=int, default=10, help="sweep: batches to evaluate (10)")
    p.add_argument("--metric", metavar="BLOB",
                   help="sweep: blob to rank by (default: the top-1 Accuracy, else the loss)")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="writes OUT.prototxt and OUT.caffemodel (default: beside the model, "
                        "*_pattern_mean or *_quant_X)")
    a = p.parse_args(argv)

    if a.offset is not None and not (a.offset > 0 and math.isfinite(a.offset)):
        raise UserError("--offset", f"{a.offset} must be a finite value > 0")
    if a.as_layer and a.offset is None and not a.sweep:
        raise UserError("--as-layer", "goes with --offset or --sweep")
    if a.batches < 1:
        raise UserError("--batches", "must be at least 1")
    offsets = parse_sweep(a.sweep) if a.sweep else None
    if (a.val_prototxt or a.metric) and not a.sweep:
        raise UserError("--val-prototxt" if a.val_prototxt else "--metric", "goes with --sweep")

    model = read_caffemodel(a.model)
    net_path = a.prototxt or a.model
    net = read_prototxt(a.prototxt) if a.prototxt else net_from_model(model, a.model)
    selected = select_layers(net, net_path, a.filter, a.layers, a.skip)
    arrays = model_arrays(net, model, net_path, a.model)
    missing = [n for n in selected if n not in arrays]
    if missing:
        raise UserError(a.model, f"has no weights for layer '{missing[0]}'")

    if offsets is not None:
        val_path = a.val_prototxt or net_path
        val_net = read_prototxt(a.val_prototxt) if a.val_prototxt else net
        rows, scale, blob, images, notes = sweep(val_net, val_path, arrays, a.model, selected,
                                                 offsets, a.batches, a.metric)
        print(format_sweep(rows, blob, scale, images, a.batches))
        for note in notes:
            print(f"validation data: {note}")
    else:
        scale = a.offset if a.offset is not None else MEAN

    out_proto, out_model = output_paths(a.output, a.model, scale)
    for out in (out_proto, out_model):
        refuse_overwrite(out, a.model, a.prototxt, a.val_prototxt)
    new_net = pattern_net(net, selected, scale, a.as_layer)
    new_model = pattern_model(model, new_net, selected, scale)
    from google.protobuf import text_format
    write_bytes_atomic(out_model, new_model.SerializeToString())
    write_text_atomic(out_proto, text_format.MessageToString(new_net))
    defs = {layer.name: layer for layer in unique_layers(net)}
    kinds = ", ".join(f"{n} ({kernel_label(kernel_dims(defs[n]))})" for n in selected)
    rule = "alpha = mean |W| per filter" if scale == MEAN else f"+/-{scale:g}"
    print(f"binarized {len(selected)} layer(s) with {rule}: {kinds}")
    print(f"wrote {out_proto} and {out_model}")
    return 0
