"""How each weight tensor is stored in the ONNX file.

A pattern filter is exactly alpha_c * sign(W_c): storing sign(W) as a small
integer tensor and alpha as the per-channel scale of a DequantizeLinear node
loses nothing, and costs pattern-bits per weight instead of 32. The same
holds for the release's fix-pattern nets, whose stock Convolutions hold baked
+/-alpha_c filters: a filter with only two values +a and -a is a pattern.
``--bq`` (SEP-Net-BQ) quantizes 1x1 convolution and fully connected weights
to INT8 with a symmetric per-output-channel scale; that one is lossy, so
``bq_dequantized`` gives the weights it amounts to, for Caffe to be compared
against.

Per-channel affine layers folded into a layer (BatchNorm, Scale) multiply its
output channels by k_c: for a quantized weight only the scale changes
(k_c * scale_c; a negative k_c flips the integers instead, so scales stay
positive), the integers stay as they are.
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np

from . import _caffeio as io

INT8_MAX = 127


@dataclass
class Weight:
    """A layer's weight as it will be stored: float, or integers q with a
    per-output-channel scale (W = q * scale along `axis`)."""
    kind: str                        # "float", "pattern", "int8"
    w: Optional[np.ndarray] = None   # float weights (kind float)
    q: Optional[np.ndarray] = None   # integer values (pattern: +/-1; int8)
    scale: Optional[np.ndarray] = None
    axis: int = 0                    # the output-channel axis of the weight
    pattern: bool = False            # a pattern layer's filters (also when stored as fp32)

    def dense(self):
        if self.kind == "float":
            return self.w
        shape = [1] * self.q.ndim
        shape[self.axis] = -1
        return (self.q.astype(np.float32) * self.scale.reshape(shape)).astype(np.float32)

    def scaled(self, k):
        """The weight with output channel c multiplied by k[c]."""
        k = np.asarray(k, np.float32)
        if self.kind == "float":
            shape = [1] * self.w.ndim
            shape[self.axis] = -1
            return Weight("float", w=(self.w * k.reshape(shape)).astype(np.float32),
                          axis=self.axis, pattern=self.pattern)
        flip = np.where(k < 0, -1, 1).astype(self.q.dtype)
        shape = [1] * self.q.ndim
        shape[self.axis] = -1
        return Weight(self.kind, q=self.q * flip.reshape(shape),
                      scale=(self.scale * np.abs(k)).astype(np.float32), axis=self.axis,
                      pattern=self.pattern)


def pattern_alpha(layer, arrays):
    """alpha_c of a BinaryPatternConvolution, exactly as the layer computes it."""
    bp = layer.binary_pattern_param
    pb2 = type(bp)
    w = arrays[0]
    n = w.shape[0]
    if bp.scale_mode == pb2.OFFSET:
        return np.full(n, bp.offset, np.float32)
    mean = np.abs(w.reshape(n, -1).astype(np.float32)).mean(axis=1, dtype=np.float64)
    mean = mean.astype(np.float32)
    n_stock = 2 if layer.convolution_param.bias_term else 1
    if bp.train_mode == pb2.FIXED and len(arrays) > n_stock:
        learned = arrays[n_stock].reshape(-1).astype(np.float32)
        return np.where(learned != 0, learned, mean).astype(np.float32)  # 0 = unbound
    return mean


def signs_of(w):
    """sign(W) with sign(0) = +1 (the layer's rule), as int8 +/-1."""
    return np.where(w >= 0, 1, -1).astype(np.int8)


def baked_pattern(w):
    """(signs, alpha) of a stock weight whose every filter holds only +a_c and
    -a_c, or None. The sign bit decides, so the values come back bit for bit."""
    if w.ndim < 2 or not io.is_baked_binary(w):
        return None
    flat = w.reshape(w.shape[0], -1)
    return np.where(np.signbit(w), -1, 1).astype(np.int8), np.abs(flat[:, 0]).astype(np.float32)


def int8_per_channel(w, axis=0):
    """Symmetric INT8 with one scale per output channel: W ~ q * scale."""
    w = np.asarray(w, np.float32)
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    amax = np.abs(moved).max(axis=1)
    scale = np.where(amax > 0, amax / INT8_MAX, 1.0).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scale.reshape(shape)), -INT8_MAX, INT8_MAX).astype(np.int8)
    return Weight("int8", q=q, scale=scale, axis=axis)


def is_1x1(layer, w):
    return layer.type in ("Convolution", io.BPC) and w.ndim == 4 and w.shape[2:] == (1, 1)


def weight_of(layer, arrays, pattern_bits=2, bq=False):
    """The Weight to store for a Convolution, BinaryPatternConvolution or InnerProduct."""
    w = arrays[0]
    if layer.type == io.BPC:
        alpha = pattern_alpha(layer, arrays)
        if pattern_bits == 32:
            return Weight("float", w=io.bake(w, alpha), pattern=True)
        return Weight("pattern", q=signs_of(w), scale=alpha, pattern=True)
    if layer.type == "Convolution" and pattern_bits != 32:
        baked = baked_pattern(w)
        if baked is not None:
            return Weight("pattern", q=baked[0], scale=baked[1], pattern=True)
    if bq and (layer.type == "InnerProduct" or is_1x1(layer, w)):
        transpose = layer.type == "InnerProduct" and layer.inner_product_param.transpose
        return int8_per_channel(w, axis=1 if transpose else 0)
    return Weight("float", w=np.asarray(w, np.float32))


def bq_dequantized(inet, arrays, pattern_bits=2):
    """{layer: [arrays]} with every weight --bq quantizes replaced by what it
    dequantizes to: the Caffe model that the --bq ONNX file computes."""
    out = {}
    by_name = {layer.name: layer for layer in inet.net.layer}
    for name, blobs in arrays.items():
        layer = by_name.get(name)
        blobs = list(blobs)
        if layer is not None and layer.type in ("Convolution", "InnerProduct"):
            wt = weight_of(layer, blobs, pattern_bits, bq=True)
            if wt.kind == "int8":
                blobs[0] = wt.dense().reshape(blobs[0].shape)
        out[name] = blobs
    return out
