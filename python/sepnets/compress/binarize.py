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

import numpy as np

from ..caffeio.blobs import BPC, blob_array, kernel_dims, kernel_label, set_blob
from ..caffeio.proto import caffe_pb2, unique_layers
from ..errors import UserError

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
