"""Parameter counts by kind, read from the blobs pycaffe allocates for a net,
so the counts are whatever Caffe itself would store, not a re-derivation.

Kinds, the split pattern binarization cares about (it binarizes k x k filters
and keeps 1 x 1 and FC weights in full precision):

* ``kxk``: weights of convolutions with a kernel larger than 1 x 1 (grouped and
  depthwise included);
* ``1x1``: weights of 1 x 1 convolutions;
* ``fc``: InnerProduct weights;
* ``other``: every other learned number: biases, BatchNorm's Scale (gamma,
  beta), the per-filter alpha of MEAN pattern layers;
* ``total`` = kxk + 1x1 + fc + other;
* ``bn_stats``: BatchNorm's running mean/variance/factor, stored in the model
  but not learned and not counted in ``total`` (as the papers count);
* ``binarized``: the weights of the given pattern layers (a subset of kxk,
  or of 1x1 for GoogLeNet's projAll1x1).

:func:`multiply_adds` prices compute the same way, from the layer table
Caffe itself shapes: what one image costs in the convolutions and FC layers
(the rest, BatchNorm, ReLU, pooling, is a few percent and not counted, as the
papers count).
"""
import os
import tempfile

from ..caffeio.env import import_caffe
from ..compress.sizes import KINDS, count_params  # noqa: F401 (KINDS: re-exported)

CONV_TYPES = ("Convolution", "BinaryPatternConvolution", "Deconvolution")


def _net(path_or_text):
    caffe = import_caffe()
    if os.path.isfile(path_or_text):
        return caffe.Net(path_or_text, caffe.TEST)
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(path_or_text)
    try:
        return caffe.Net(f.name, caffe.TEST)
    finally:
        os.remove(f.name)


def count(net_or_path, pattern_layers=()):
    """Counts by kind (see the module docstring) of a pycaffe Net, a prototxt
    path or prototxt text (a deploy net: nothing is read from data layers),
    by the project's one parameter counter
    (:func:`sepnets.compress.sizes.count_params`)."""
    net = net_or_path if hasattr(net_or_path, "layers") else _net(net_or_path)
    return count_params(((name, layer.type, [tuple(b.shape) for b in layer.blobs])
                        for name, layer in zip(net._layer_names, net.layers)),
                        pattern_layers)


def conv_table(net_or_path):
    """Rows (name, type, kernel, stride, group, out C x H x W, weights) of the
    parameter layers, for documenting a net layer by layer."""
    import_caffe()
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format
    if hasattr(net_or_path, "layers"):
        raise TypeError("conv_table needs the prototxt (path or text)")
    text = open(net_or_path).read() if os.path.isfile(net_or_path) else net_or_path
    proto = caffe_pb2.NetParameter()
    text_format.Merge(text, proto)
    net = _net(net_or_path)
    rows = []
    for lp in proto.layer:
        if lp.type in CONV_TYPES:
            cp = lp.convolution_param
            k = cp.kernel_size[0] if cp.kernel_size else cp.kernel_h
            s = cp.stride[0] if cp.stride else 1
            g = cp.group
        elif lp.type == "InnerProduct":
            k, s, g = None, None, None
        else:
            continue
        shape = net.blobs[lp.top[0]].data.shape[1:]
        rows.append((lp.name, lp.type, k, s, g, tuple(shape), net.params[lp.name][0].count))
    return rows


def multiply_adds(net_or_path):
    """Multiply-adds per image of the convolutions and FC layers of a deploy
    net (path or text): each weight is used once per output position
    (groups and strides included, since the weight count and the output
    shape come from Caffe)."""
    total = 0
    for _name, _typ, k, _s, _g, shape, weights in conv_table(net_or_path):
        positions = shape[1] * shape[2] if k is not None and len(shape) == 3 else 1
        total += weights * positions
    return total
