"""Blobs of Caffe models: their shapes (the pre-2015 num/channels/height/width
form too), their values as float32 arrays, and the check that a caffemodel
fits a prototxt, so that a mismatch is one clear error instead of Caffe's
abort deep inside ``CopyTrainedLayersFrom``.
"""
import numpy as np

from ..errors import UserError
from .proto import unique_layers

BPC = "BinaryPatternConvolution"
CONV_TYPES = ("Convolution", BPC)


def kernel_dims(layer):
    """The kernel (h, w) a convolution layer declares (2-D unless it says more)."""
    cp = layer.convolution_param
    if cp.HasField("kernel_h") or cp.HasField("kernel_w"):
        return (cp.kernel_h, cp.kernel_w)
    ks = tuple(cp.kernel_size)
    if len(ks) == 1:
        return (ks[0], ks[0])
    return ks


def kernel_label(kernel):
    return "x".join(str(k) for k in kernel)


def _legacy_ndim(layer_type, index):
    if index == 0 and layer_type in ("Convolution", "Deconvolution", BPC):
        return 4
    if index == 0 and layer_type in ("InnerProduct", "Embed"):
        return 2
    return 1


def blob_shape(blob, layer_type="", index=0):
    """A blob's shape, reading the pre-2015 num/channels/height/width form too."""
    if blob.HasField("shape"):
        return tuple(int(d) for d in blob.shape.dim)
    shape = [blob.num, blob.channels, blob.height, blob.width]
    while len(shape) > _legacy_ndim(layer_type, index) and shape[0] == 1:
        shape.pop(0)
    return tuple(shape)


def blob_array(blob, layer_type="", index=0):
    """A blob's values as float32 (Caffe's storage type), in its shape."""
    shape = blob_shape(blob, layer_type, index)
    values = blob.data if len(blob.data) else blob.double_data
    arr = np.array(values, dtype=np.float32)
    if arr.size != int(np.prod(shape, dtype=np.int64)):
        raise ValueError(f"blob holds {arr.size} values for shape {shape}")
    return arr.reshape(shape)


def set_blob(blob, arr):
    """Write a float32 array into a BlobProto in the modern (shape) form."""
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    blob.Clear()
    blob.shape.dim.extend(int(d) for d in arr.shape)
    blob.data.extend(arr.ravel().tolist())


def has_params(layer):
    """Whether Caffe gives this layer learnable blobs (so a model must hold them)."""
    t = layer.type
    if t in ("Convolution", "Deconvolution", BPC, "InnerProduct", "BatchNorm",
             "Embed", "PReLU"):
        return True
    if t in ("Scale", "Bias"):
        return len(layer.bottom) == 1
    return False


def _wants_alpha(layer):
    bp = layer.binary_pattern_param
    pb2 = type(bp)
    return (layer.type == BPC and bp.scale_mode == pb2.MEAN and bp.train_mode == pb2.FIXED)


def expected_shapes(layer):
    """What the prototxt fixes about a layer's blobs: a list of allowed blob
    lists, each a list of shapes with None for what depends on the input."""
    t = layer.type
    if t in CONV_TYPES or t == "Deconvolution":
        cp = layer.convolution_param
        k = kernel_dims(layer)
        n = cp.num_output
        w = (n, None) + k if t != "Deconvolution" else (None, None) + k
        blobs = [w] + ([(n,)] if cp.bias_term else [])
        if t == BPC and _wants_alpha(layer):
            return [blobs, blobs + [(n,)]]
        return [blobs]
    if t == "InnerProduct":
        ip = layer.inner_product_param
        n = ip.num_output
        w = (None, n) if ip.transpose else (n, None)
        return [[w] + ([(n,)] if ip.bias_term else [])]
    if t == "BatchNorm":
        return [[(None,), (None,), (1,)]]
    if t == "Scale":
        return [[None, None]] if layer.scale_param.bias_term else [[None]]
    return None


def _shape_ok(expected, actual):
    if expected is None:
        return True
    return len(expected) == len(actual) and all(
        e is None or e == a for e, a in zip(expected, actual))


def _fmt_shape(shape):
    return "x".join("?" if d is None else str(d) for d in shape) if shape is not None else "?"


def check_layer_blobs(layer, shapes, source, what="holds"):
    """Raise if the blob shapes `source` has for `layer` do not fit its definition."""
    options = expected_shapes(layer)
    if options is None:
        return
    for blobs in options:
        if len(blobs) == len(shapes) and all(_shape_ok(e, a) for e, a in zip(blobs, shapes)):
            return
    want = " or ".join("[" + ", ".join(_fmt_shape(s) for s in b) + "]" for b in options)
    got = "[" + ", ".join(_fmt_shape(s) for s in shapes) + "]"
    raise UserError(source, f"layer '{layer.name}' ({layer.type}) {what} blobs {got}, "
                            f"but the prototxt needs {want}: model and prototxt do not match")


def model_blobs(net, model, net_path, model_path):
    """The model's blobs for every parameter layer of the net, checked against
    the net's definitions: {layer name: [BlobProto, ...]} in net order.

    Layers the model holds but the net lacks are ignored (as Caffe does); a
    parameter layer of the net without weights, or with blobs of the wrong
    count or shape, is one clear error instead of Caffe's abort.
    """
    stored = {}
    for layer in model.layer:
        if layer.blobs and layer.name not in stored:
            stored[layer.name] = layer
    result = {}
    for layer in unique_layers(net):
        m = stored.get(layer.name)
        if m is None:
            if has_params(layer):
                raise UserError(model_path, f"has no weights for layer '{layer.name}' "
                                            f"({layer.type}) of {net_path}: model and "
                                            "prototxt do not match")
            continue
        compatible = {layer.type, m.type} <= set(CONV_TYPES) or layer.type == m.type
        if m.type and not compatible:
            raise UserError(model_path, f"layer '{layer.name}' is {m.type} in the model but "
                                        f"{layer.type} in {net_path}: model and prototxt "
                                        "do not match")
        shapes = [blob_shape(b, layer.type, i) for i, b in enumerate(m.blobs)]
        for i, (b, shape) in enumerate(zip(m.blobs, shapes)):
            n = len(b.data) or len(b.double_data)
            if n != int(np.prod(shape, dtype=np.int64)):
                raise UserError(model_path, f"corrupt: layer '{layer.name}' blob {i} holds {n} "
                                            f"values for shape {_fmt_shape(shape)}")
        check_layer_blobs(layer, shapes, model_path)
        result[layer.name] = list(m.blobs)
    if not result:
        raise UserError(model_path, f"shares no parameter layer with {net_path}")
    return result


def model_arrays(net, model, net_path, model_path):
    """Like model_blobs, as float32 arrays."""
    types = {layer.name: layer.type for layer in net.layer}
    return {name: [blob_array(b, types[name], i) for i, b in enumerate(blobs)]
            for name, blobs in model_blobs(net, model, net_path, model_path).items()}
