"""One ONNX translation per Caffe layer type, each exact or refused.

Caffe and ONNX disagree in a few places, handled here rather than trusted to
defaults:

* Pooling: Caffe rounds the output size up and then drops a last window that
  would start in the right padding; the pads given to ONNX are the begin pads
  plus exactly what makes ONNX's floor formula give Caffe's size (checked,
  else refused). AVE divides by the window clipped to the *padded* input, not
  beyond it: with padding, the input is zero-padded by a Pad node and the
  remaining overhang excluded (count_include_pad=0), which is that divisor.
* BatchNorm holds running sums and a scale factor: the statistics are
  mean/s, var/s (s = 0 means 0), and TEST uses them (global stats).
* Eltwise SUM coefficients, ReLU's negative slope, LRN's alpha/n are spelled
  out with their ONNX equivalents.
"""
import numpy as np
from onnx import helper, numpy_helper

from . import _caffeio as io
from .weights import weight_of

def _int_dtype(bits):
    import ml_dtypes
    return {2: ml_dtypes.int2, 4: ml_dtypes.int4, 8: np.int8}[bits]


class Refused(Exception):
    """A layer ONNX cannot express exactly; the message names the reason."""


class Builder:
    """Nodes and initializers of the graph being built, with unique names."""

    def __init__(self, pattern_bits=2, bq=False):
        self.nodes, self.inits, self.used = [], [], set()
        self.pattern_bits, self.bq = pattern_bits, bq
        self.stored = {}   # layer name -> [initializer names] of its weight (size checks)

    def unique(self, base):
        name, i = base, 1
        while name in self.used:
            i += 1
            name = f"{base}_{i}"
        self.used.add(name)
        return name

    def const(self, base, arr):
        name = self.unique(base)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def node(self, op, inputs, output=None, base="", **attrs):
        out = output or self.unique(base or op)
        self.used.add(out)
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=self.unique(
            f"{base or out}/{op}"), **attrs))
        return out

    def weight(self, layer, wt):
        """The ONNX value of a Weight: a float initializer, or integers + scale
        through DequantizeLinear (per output channel)."""
        base = f"{layer.name}.W"
        if wt.kind == "float":
            name = self.const(base, wt.w.astype(np.float32))
            self.stored[layer.name] = ("pattern-fp32" if wt.pattern else "float", [name])
            return name
        bits = self.pattern_bits if wt.kind == "pattern" else 8
        q = self.const(base + f".int{bits}", wt.q.astype(_int_dtype(bits)))
        s = self.const(base + ".scale", wt.scale.astype(np.float32))
        self.stored[layer.name] = (wt.kind, [q, s])
        return self.node("DequantizeLinear", [q, s], base=base, axis=wt.axis)


def _hw(param, name, default):
    """Caffe's (h, w) of kernel/stride/pad: the _h/_w pair, else the plain
    field (repeated in ConvolutionParameter, single in PoolingParameter)."""
    if param.HasField(f"{name}_h") or param.HasField(f"{name}_w"):
        return (getattr(param, f"{name}_h"), getattr(param, f"{name}_w"))
    field = "kernel_size" if name == "kernel" else name
    values = getattr(param, field)
    if not hasattr(values, "__len__"):
        values = [values] if param.HasField(field) else []
    values = list(values)
    if not values:
        return (default, default)
    return (values[0], values[0]) if len(values) == 1 else tuple(values[:2])


# ------------------------------------------------------------ convolution

def conv(b, layer, ins, out, shapes, arrays, fold):
    cp = layer.convolution_param
    w = arrays[0]
    if w.ndim != 4 or cp.axis != 1:
        raise Refused("only 2-D convolutions over axis 1 are exported")
    kh, kw = w.shape[2:]
    sh, sw = _hw(cp, "stride", 1)
    ph, pw = _hw(cp, "pad", 0)
    dil = list(cp.dilation) or [1]
    dh, dw = (dil[0], dil[0]) if len(dil) == 1 else dil[:2]
    wt = weight_of(layer, arrays, b.pattern_bits, b.bq)
    bias = arrays[1].reshape(-1) if cp.bias_term else np.zeros(w.shape[0], np.float32)
    wt, bias = fold.apply(wt, bias)
    inputs = [ins[0], b.weight(layer, wt)]
    if cp.bias_term or fold.layers:
        inputs.append(b.const(f"{layer.name}.b", bias.astype(np.float32)))
    return [b.node("Conv", inputs, out, layer.name, kernel_shape=[kh, kw], strides=[sh, sw],
                   pads=[ph, pw, ph, pw], dilations=[dh, dw], group=cp.group or 1)]


def inner_product(b, layer, ins, out, shapes, arrays, fold):
    ip = layer.inner_product_param
    axis = ip.axis % len(shapes[0])
    wt = weight_of(layer, arrays, b.pattern_bits, b.bq)
    wt.axis = 1 if ip.transpose else 0
    bias = arrays[1].reshape(-1) if ip.bias_term else np.zeros(ip.num_output, np.float32)
    wt, bias = fold.apply(wt, bias)
    wname = b.weight(layer, wt)
    bname = b.const(f"{layer.name}.b", bias.astype(np.float32))
    if axis == 1:
        flat = b.node("Flatten", [ins[0]], base=f"{layer.name}.flat", axis=1)
        return [b.node("Gemm", [flat, wname, bname], out, layer.name,
                       transB=0 if ip.transpose else 1)]
    shape = b.const(f"{layer.name}.shape", np.array([0] * axis + [-1], np.int64))
    x = b.node("Reshape", [ins[0], shape], base=f"{layer.name}.flat")
    if not ip.transpose:
        wname = b.node("Transpose", [wname], base=f"{layer.name}.WT", perm=[1, 0])
    y = b.node("MatMul", [x, wname], base=f"{layer.name}.mm")
    return [b.node("Add", [y, bname], out, layer.name)]


# ------------------------------------------------- per-channel affine layers

def bn_stats(layer, arrays):
    """(mean, var, eps) of a Caffe BatchNorm (running sums / scale factor)."""
    s = float(arrays[2].reshape(-1)[0])
    f = 0.0 if s == 0 else 1.0 / s
    mean = (arrays[0].reshape(-1) * np.float32(f)).astype(np.float32)
    var = (arrays[1].reshape(-1) * np.float32(f)).astype(np.float32)
    return mean, var, layer.batch_norm_param.eps


def bn_uses_global_stats(layer):
    bp = layer.batch_norm_param
    return not bp.HasField("use_global_stats") or bp.use_global_stats


def per_channel_scale(layer, shape):
    """Whether a Scale layer multiplies axis 1 only (so it can fold)."""
    sp = layer.scale_param
    return len(layer.bottom) == 1 and sp.axis % len(shape) == 1 and sp.num_axes == 1


def affine_of(layer, arrays):
    """(k, c) with y = k * x + c per channel, for BatchNorm and per-channel Scale."""
    if layer.type == "BatchNorm":
        mean, var, eps = bn_stats(layer, arrays)
        k = (1.0 / np.sqrt(var + np.float32(eps))).astype(np.float32)
        return k, (-mean * k).astype(np.float32)
    k = arrays[0].reshape(-1).astype(np.float32)
    c = arrays[1].reshape(-1).astype(np.float32) if layer.scale_param.bias_term \
        else np.zeros_like(k)
    return k, c


class Fold:
    """The affine layers folded into one weight layer, applied in order."""

    def __init__(self, layers=(), arrays=None):
        self.layers = list(layers)
        self.arrays = arrays or {}

    def apply(self, wt, bias):
        for layer in self.layers:
            k, c = affine_of(layer, self.arrays[layer.name])
            wt = wt.scaled(k)
            bias = (bias * k + c).astype(np.float32)
        return wt, bias


def batch_norm(b, layer, ins, out, shapes, arrays, scale_layer=None, scale_arrays=None):
    if not bn_uses_global_stats(layer):
        raise Refused("use_global_stats: false normalizes with the batch's statistics, "
                      "which an inference graph does not do")
    mean, var, eps = bn_stats(layer, arrays)
    n = mean.size
    if scale_layer is not None:
        gamma, beta = affine_of(scale_layer, scale_arrays)
    else:
        gamma, beta = np.ones(n, np.float32), np.zeros(n, np.float32)
    return [b.node("BatchNormalization",
                   [ins[0], b.const(f"{layer.name}.gamma", gamma),
                    b.const(f"{layer.name}.beta", beta), b.const(f"{layer.name}.mean", mean),
                    b.const(f"{layer.name}.var", var)], out, layer.name, epsilon=eps)]


def scale(b, layer, ins, out, shapes, arrays):
    sp = layer.scale_param
    rank = len(shapes[0])
    axis = sp.axis % rank
    if len(layer.bottom) != 1:
        raise Refused("a Scale layer with two bottoms is not exported")
    n_axes = rank - axis if sp.num_axes == -1 else sp.num_axes
    bshape = tuple(shapes[0][axis:axis + n_axes]) + (1,) * (rank - axis - n_axes)
    gamma = b.const(f"{layer.name}.gamma", arrays[0].reshape(bshape))
    if not sp.bias_term:
        return [b.node("Mul", [ins[0], gamma], out, layer.name)]
    y = b.node("Mul", [ins[0], gamma], base=f"{layer.name}.mul")
    return [b.node("Add", [y, b.const(f"{layer.name}.beta", arrays[1].reshape(bshape))],
                   out, layer.name)]


# ------------------------------------------------------------ pooling

def _pool_pads(h, k, s, p, out):
    """End pad that makes ONNX's floor formula give Caffe's output size `out`."""
    end = max(0, (out - 1) * s + k - h - p)
    if (h + p + end - k) // s + 1 != out:
        raise Refused(f"pooling size {h} -> {out} (kernel {k}, stride {s}, pad {p}) "
                      "has no exact ONNX form")
    return end


def pooling(b, layer, ins, out, shapes, arrays):
    pp = layer.pooling_param
    pb2 = type(pp)
    method = {pb2.MAX: "Max", pb2.AVE: "Average"}.get(pp.pool)
    if method is None:
        raise Refused("STOCHASTIC pooling has no ONNX equivalent")
    x_shape, y_shape = shapes[0], shapes[1]
    if len(x_shape) != 4:
        raise Refused("only 2-D pooling is exported")
    if pp.global_pooling:
        return [b.node(f"Global{method}Pool", [ins[0]], out, layer.name)]
    (kh, kw), (sh, sw), (ph, pw) = (_hw(pp, "kernel", 0), _hw(pp, "stride", 1),
                                    _hw(pp, "pad", 0))
    H, W = x_shape[2:]
    oh, ow = y_shape[2:]
    eh, ew = _pool_pads(H, kh, sh, ph, oh), _pool_pads(W, kw, sw, pw, ow)
    if method == "Max":
        return [b.node("MaxPool", [ins[0]], out, layer.name, kernel_shape=[kh, kw],
                       strides=[sh, sw], pads=[ph, pw, eh, ew])]
    if eh == ph and ew == pw:   # every window inside [-pad, H+pad): divisor k*k
        return [b.node("AveragePool", [ins[0]], out, layer.name, kernel_shape=[kh, kw],
                       strides=[sh, sw], pads=[ph, pw, ph, pw], count_include_pad=1)]
    # zeros inside Caffe's [-pad, H + pad) count in its divisor: a Pad node adds
    # them as real input; what lies beyond is excluded (count_include_pad=0)
    bh, bw = min(ph, eh), min(pw, ew)
    x = ins[0]
    if ph or pw or bh or bw:
        x = b.node("Pad", [x, b.const(f"{layer.name}.pads",
                                      np.array([0, 0, ph, pw, 0, 0, bh, bw], np.int64))],
                   base=f"{layer.name}.pad")
    return [b.node("AveragePool", [x], out, layer.name, kernel_shape=[kh, kw],
                   strides=[sh, sw], pads=[0, 0, eh - bh, ew - bw], count_include_pad=0)]


# ------------------------------------------------------------ the rest

def relu(b, layer, ins, out, shapes, arrays):
    slope = layer.relu_param.negative_slope
    if slope:
        return [b.node("LeakyRelu", ins, out, layer.name, alpha=slope)]
    return [b.node("Relu", ins, out, layer.name)]


def eltwise(b, layer, ins, out, shapes, arrays):
    ep = layer.eltwise_param
    pb2 = type(ep)
    if ep.operation == pb2.PROD:
        return _chain(b, "Mul", layer, ins, out)
    if ep.operation == pb2.MAX:
        return [b.node("Max", ins, out, layer.name)]
    coeff = list(ep.coeff)
    if coeff and len(coeff) != len(ins):
        raise Refused(f"{len(coeff)} coefficients for {len(ins)} bottoms")
    terms = []
    for i, x in enumerate(ins):
        c = coeff[i] if coeff else 1.0
        terms.append(x if c == 1.0 else b.node(
            "Mul", [x, b.const(f"{layer.name}.coeff{i}", np.array(c, np.float32))],
            base=f"{layer.name}.term{i}"))
    return [b.node("Sum", terms, out, layer.name)]


def _chain(b, op, layer, ins, out):
    y = ins[0]
    for i, x in enumerate(ins[1:]):
        y = b.node(op, [y, x], out if i == len(ins) - 2 else None, layer.name)
    return [y]


def concat(b, layer, ins, out, shapes, arrays):
    cp = layer.concat_param
    axis = cp.concat_dim if cp.HasField("concat_dim") else cp.axis
    return [b.node("Concat", ins, out, layer.name, axis=axis)]


def lrn(b, layer, ins, out, shapes, arrays):
    lp = layer.lrn_param
    if lp.norm_region != type(lp).ACROSS_CHANNELS:
        raise Refused("WITHIN_CHANNEL LRN is not exported (ONNX LRN is across channels)")
    return [b.node("LRN", ins, out, layer.name, size=lp.local_size, alpha=lp.alpha,
                   beta=lp.beta, bias=lp.k)]


def softmax(b, layer, ins, out, shapes, arrays):
    return [b.node("Softmax", ins, out, layer.name, axis=layer.softmax_param.axis)]


def _reshape_to(b, layer, x, dims, out):
    return [b.node("Reshape", [x, b.const(f"{layer.name}.shape", np.array(dims, np.int64))],
                   out, layer.name)]


def flatten(b, layer, ins, out, shapes, arrays):
    fp = layer.flatten_param
    x_shape = shapes[0]
    rank = len(x_shape)
    axis, end = fp.axis % rank, fp.end_axis % rank
    dims = [0] * axis + [-1] + list(x_shape[end + 1:])
    return _reshape_to(b, layer, ins[0], dims, out)


def reshape(b, layer, ins, out, shapes, arrays):
    rp = layer.reshape_param
    x_shape = shapes[0]
    rank = len(x_shape)
    axis = rp.axis % (rank + 1) if rp.axis < 0 else rp.axis
    end = rank if rp.num_axes == -1 else axis + rp.num_axes
    dims = list(rp.shape.dim)
    if axis > 0 and any(d == 0 for d in dims):
        dims = [x_shape[axis + i] if d == 0 else d for i, d in enumerate(dims)]
    return _reshape_to(b, layer, ins[0], [0] * axis + dims + list(x_shape[end:]), out)


def unary(op):
    def convert(b, layer, ins, out, shapes, arrays):
        return [b.node(op, ins, out, layer.name)]
    return convert


CONVERTERS = {
    "Convolution": conv, io.BPC: conv, "InnerProduct": inner_product,
    "BatchNorm": batch_norm, "Scale": scale, "Pooling": pooling, "ReLU": relu,
    "Eltwise": eltwise, "Concat": concat, "LRN": lrn,
    "Softmax": softmax, "Flatten": flatten, "Reshape": reshape,
    "Sigmoid": unary("Sigmoid"), "TanH": unary("Tanh"), "AbsVal": unary("Abs"),
}
