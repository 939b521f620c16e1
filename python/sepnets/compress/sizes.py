"""What a model costs to store: the paper's headline is model size, so the rules
that turn a Caffe net into bytes live in one place, shared by the size summary
and the packed file format (whose size on disk must agree with it).

Precision rules (PAPER_NOTES sections 1 and 4):

* a pattern-binarized k x k filter costs 1 bit per weight plus one fp32 scale
  alpha per output filter. A layer is binarized when it is a
  ``BinaryPatternConvolution``, or (given its weights) a stock ``Convolution``
  whose every filter holds only +a_c and -a_c: the release's baked +/-offset
  layers. With scale_mode MEAN + FIXED the scale is the layer's alpha blob;
  otherwise it is counted with the weights;
* with ``bq`` (SEP-Net-BQ) the weights of 1 x 1 convolutions and fully
  connected layers cost 8 bits each, plus a per-tensor fp32 scale and uint8
  zero point (5 bytes);
* everything else (biases, BatchNorm/Scale, other layers) is fp32;
* each blob is stored in whole bytes; MB = 10^6 bytes.

Parameters are counted here once (:func:`count_params`), for the size tables
and for ``tools/gen_prototxt.py --summary`` alike, so the two tables agree:
BatchNorm's running statistics are stored (and priced) but are not learned,
so they are not parameters.
"""
import os
from dataclasses import dataclass, field

import numpy as np

from ..caffeio.blobs import (BPC, CONV_TYPES, _wants_alpha, blob_array, blob_shape,
                             kernel_dims, kernel_label, model_blobs)
from ..caffeio.proto import read_caffemodel, read_prototxt, unique_layers
from ..caffeio.pycaffe import net_param_shapes
from ..errors import UserError

MB = 10 ** 6
BINARY, INT8, FP32 = "1-bit", "8-bit", "fp32"
#: Bits a uint8 tensor carries besides its weights: fp32 scale + uint8 zero point.
INT8_EXTRA_BITS = 40
#: Layer types whose weights the BQ variant stores in 8 bits (1 x 1 convs also).
BQ_TYPES = ("InnerProduct",)
#: Kinds of :func:`count_params`, the split pattern binarization cares about.
KINDS = ("total", "kxk", "1x1", "fc", "other", "bn_stats", "binarized")
_WEIGHTED = CONV_TYPES + ("Deconvolution",)


def count_params(layers, pattern_layers=()):
    """Parameter counts by kind from ``(name, type, [blob shapes])`` triples.

    * ``kxk`` / ``1x1``: convolution weights by kernel size (grouped and
      depthwise included); ``fc``: InnerProduct weights;
    * ``other``: every other learned number (biases, Scale's gamma/beta, the
      per-filter alpha of MEAN pattern layers);
    * ``total`` = kxk + 1x1 + fc + other;
    * ``bn_stats``: BatchNorm's running mean/variance/factor, stored in the
      model but not learned, so not in ``total`` (as the papers count);
    * ``binarized``: the weights of `pattern_layers`.

    The one counter of the project: the network tables
    (``gen_prototxt.py --summary``) and the size tables
    (``model_summary.py --all``) both count with it."""
    c = dict.fromkeys(KINDS, 0)
    patterns = set(pattern_layers)
    names = set()
    for name, ltype, shapes in layers:
        names.add(name)
        counts = [int(np.prod(s, dtype=np.int64)) for s in shapes]
        if not counts:
            continue
        if ltype == "BatchNorm":
            c["bn_stats"] += sum(counts)
            continue
        rest = counts
        if ltype in _WEIGHTED:
            rest = counts[1:]
            c["1x1" if all(k == 1 for k in shapes[0][2:]) else "kxk"] += counts[0]
            if name in patterns:
                c["binarized"] += counts[0]
        elif ltype == "InnerProduct":
            rest = counts[1:]
            c["fc"] += counts[0]
        c["other"] += sum(rest)
    missing = patterns - names
    if missing:
        raise ValueError(f"pattern layers not in the net: {sorted(missing)}")
    c["total"] = c["kxk"] + c["1x1"] + c["fc"] + c["other"]
    return c


@dataclass
class BlobSize:
    role: str          # weights, bias, alpha, param
    shape: tuple
    precision: str     # BINARY, INT8, FP32
    encoding: str      # fp32, sign, sign+scale, uint8 (the packed file's)

    @property
    def count(self):
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def bits(self):
        n = self.count
        if self.encoding == "sign":
            return n
        if self.encoding == "sign+scale":
            return n + 32 * self.shape[0]
        if self.encoding == "uint8":
            return 8 * n + INT8_EXTRA_BITS
        return 32 * n

    @property
    def nbytes(self):
        return (self.bits + 7) // 8


@dataclass
class LayerSize:
    name: str
    type: str
    kernel: str
    blobs: list = field(default_factory=list)

    @property
    def precision(self):
        return self.blobs[0].precision if self.blobs else FP32

    @property
    def params(self):
        return sum(b.count for b in self.blobs)

    @property
    def bits(self):
        return sum(b.bits for b in self.blobs)

    @property
    def nbytes(self):
        return sum(b.nbytes for b in self.blobs)


def is_baked_binary(w):
    """Whether every filter of a conv weight holds only +a_c and -a_c (and has
    more than one entry, so a 1-entry filter does not count as a pattern)."""
    flat = np.abs(np.asarray(w, dtype=np.float32).reshape(w.shape[0], -1))
    return flat.shape[1] > 1 and bool(np.all(flat == flat[:, :1]))


def layer_size(layer, shapes, weights=None, bq=False, baked=False):
    """How each blob of a layer is stored under the precision rules.

    `shapes` are the blob shapes the model holds (or the net declares);
    `weights` (optional) the first blob's values, to recognise baked +/-a
    Convolution layers; `baked` says a stock Convolution holds them without
    looking (a release-style fix-pattern net known only by its prototxt).
    """
    t = layer.type
    kernel = ""
    if t in CONV_TYPES or t == "Deconvolution":
        kernel = kernel_label(shapes[0][2:]) if shapes else kernel_label(kernel_dims(layer))
    blobs = []
    if t == BPC:
        has_bias = layer.convolution_param.bias_term
        alpha_blob = _wants_alpha(layer)
        blobs.append(BlobSize("weights", shapes[0], BINARY, "sign" if alpha_blob else "sign+scale"))
        if has_bias:
            blobs.append(BlobSize("bias", shapes[1], FP32, "fp32"))
        if alpha_blob:
            blobs.append(BlobSize("alpha", (shapes[0][0],), FP32, "fp32"))
        return LayerSize(layer.name, t, kernel, blobs)
    for i, shape in enumerate(shapes):
        role = "weights" if i == 0 else ("bias" if t in ("Convolution", "InnerProduct",
                                                          "Deconvolution") else "param")
        blobs.append(BlobSize(role, tuple(shape), FP32, "fp32"))
    if blobs and t == "Convolution" and (baked or (weights is not None
                                                 and is_baked_binary(weights))):
        blobs[0] = BlobSize("weights", blobs[0].shape, BINARY, "sign+scale")
    elif blobs and bq and (t in BQ_TYPES or (t == "Convolution"
                                             and set(kernel.split("x")) == {"1"})):
        blobs[0] = BlobSize("weights", blobs[0].shape, INT8, "uint8")
    return LayerSize(layer.name, t, kernel, blobs)


def model_layer_sizes(net, model, net_path, model_path, bq=False):
    """LayerSize of every parameter layer, from a prototxt and its caffemodel."""
    types = {layer.name: layer for layer in unique_layers(net)}
    out = []
    for name, blobs in model_blobs(net, model, net_path, model_path).items():
        layer = types[name]
        shapes = [blob_shape(b, layer.type, i) for i, b in enumerate(blobs)]
        weights = None
        if layer.type == "Convolution":
            weights = blob_array(blobs[0], layer.type, 0)
        out.append(layer_size(layer, shapes, weights, bq))
    return out


def net_layer_sizes(net, net_path, bq=False, input_shape=None, baked=(), shapes=None):
    """LayerSize of every parameter layer from the prototxt alone (layer types
    decide the precision: stock Convolutions count as fp32 unless named in
    `baked`)."""
    if shapes is None:
        shapes = net_param_shapes(net, net_path, input_shape)
    by_name = {layer.name: layer for layer in unique_layers(net)}
    for name in baked:
        if name not in by_name or by_name[name].type != "Convolution":
            raise UserError(net_path, f"--baked: no Convolution layer named '{name}'")
    return [layer_size(by_name[name], s, None, bq, name in set(baked))
            for name, s in shapes.items()]


# ------------------------------------------------------------------ summaries

@dataclass
class Summary:
    name: str
    layers: list

    def params_by_precision(self):
        out = {BINARY: 0, INT8: 0, FP32: 0}
        for layer in self.layers:
            for b in layer.blobs:
                out[b.precision] += b.count
        return out

    @property
    def params(self):
        return sum(layer.params for layer in self.layers)

    @property
    def counts(self):
        """Parameter counts by kind (:func:`count_params`): BatchNorm's running
        statistics are stored, so they are in `params` and the sizes, but
        they are not learned parameters."""
        return count_params((lay.name, lay.type, [b.shape for b in lay.blobs])
                            for lay in self.layers)

    @property
    def nbytes(self):
        return sum(layer.nbytes for layer in self.layers)

    @property
    def fp32_bytes(self):
        return 4 * self.params

    @property
    def ratio(self):
        return self.fp32_bytes / self.nbytes if self.nbytes else float("nan")

    def as_dict(self):
        return {
            "name": self.name,
            "layers": [{"name": lay.name, "type": lay.type, "kernel": lay.kernel,
                        "precision": lay.precision, "params": lay.params,
                        "bits": lay.bits, "bytes": lay.nbytes} for lay in self.layers],
            "params": self.params, "params_by_precision": self.params_by_precision(),
            "bytes": self.nbytes, "size_mb": self.nbytes / MB,
            "fp32_bytes": self.fp32_bytes, "fp32_size_mb": self.fp32_bytes / MB,
            "compression_ratio": self.ratio,
        }


def summarize(prototxt, caffemodel=None, bq=False, input_shape=None, baked=()):
    """The size summary of a net (with its weights when a caffemodel is given)."""
    net = read_prototxt(prototxt)
    if caffemodel:
        if baked:
            raise UserError("--baked", "is for prototxts without a caffemodel (the weights "
                                       "show which layers are baked)")
        model = read_caffemodel(caffemodel)
        layers = model_layer_sizes(net, model, prototxt, caffemodel, bq)
    else:
        layers = net_layer_sizes(net, prototxt, bq, input_shape, baked)
    name = net.name or os.path.splitext(os.path.basename(prototxt))[0]
    return Summary(name + (" (BQ)" if bq else ""), layers)
