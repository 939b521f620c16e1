"""The inference net behind a prototxt, as the exporter and the runtimes need it.

A Caffe prototxt can be a deploy net (Input layers), a legacy deploy net
(``input:`` / ``input_dim:`` header) or a train_val net (data layers, loss and
accuracy layers). All three become one TEST-phase net with Input layers and no
loss/accuracy layers, so that ONNX export, Caffe's forward and the classifier
see the same graph. Blob shapes come from Caffe itself (a pycaffe instance of
that net at batch 1): Caffe's own shape rules (pooling's ceil rounding, the
convolution arithmetic) are then the ones the exporter has to reproduce, and
the tests can hold it to them.
"""
import os
from dataclasses import dataclass, field

from . import _caffeio as io

#: Layers with no inference meaning: dropped from a train_val net.
TRAINING_ONLY = ("Accuracy", "SoftmaxWithLoss", "EuclideanLoss", "HingeLoss",
                 "SigmoidCrossEntropyLoss", "InfogainLoss", "MultinomialLogisticLoss",
                 "ContrastiveLoss", "Silence")
DATA_TYPES = ("Data", "ImageData", "HDF5Data", "WindowData", "MemoryData",
              "AnnotatedData", "DummyData")


@dataclass
class InferenceNet:
    """A TEST-phase NetParameter with Input layers, plus what was learned about it."""
    net: object                     # caffe_pb2.NetParameter
    path: str
    transform: dict = field(default_factory=dict)  # the TEST data layer's, if any
    data_source: str = ""           # the TEST data layer's source, if any
    dropped: list = field(default_factory=list)     # "name (type)" of dropped layers


def _legacy_inputs(net, path, pb2):
    """Input layers for a legacy ``input:`` header (input_shape or input_dim)."""
    layers = []
    dims = list(net.input_dim)
    if net.input_shape and dims:
        raise io.UserError(path, "legacy header has both input_shape and input_dim")
    if not net.input_shape and len(dims) != 4 * len(net.input):
        raise io.UserError(path, f"legacy header: {len(net.input)} input(s) need "
                                 f"{4 * len(net.input)} input_dim values, found {len(dims)}")
    for i, name in enumerate(net.input):
        layer = pb2.LayerParameter(name=name, type="Input")
        layer.top.append(name)
        shape = layer.input_param.shape.add()
        if net.input_shape:
            if i >= len(net.input_shape):
                raise io.UserError(path, f"legacy header: no input_shape for input '{name}'")
            shape.dim.extend(net.input_shape[i].dim)
        else:
            shape.dim.extend(dims[4 * i:4 * i + 4])
        layers.append(layer)
    return layers


def _transform_dict(tp):
    out = {}
    if tp.HasField("scale"):
        out["scale"] = tp.scale
    if tp.crop_size:
        out["crop_size"] = tp.crop_size
    if tp.mean_file:
        out["mean_file"] = tp.mean_file
    if tp.mean_value:
        out["mean_value"] = list(tp.mean_value)
    if tp.force_color or tp.force_gray:
        out["force_color" if tp.force_color else "force_gray"] = True
    return out


def inference_net(path, input_shape=None):
    """Read a prototxt and return its InferenceNet (one clear error if unusable)."""
    pb2 = io.caffe_pb2()
    src = io.read_prototxt(path) if not hasattr(path, "layer") else path
    path = path if isinstance(path, str) else "(net)"
    out = pb2.NetParameter()
    out.name = src.name
    inet = InferenceNet(out, path)
    for layer in _legacy_inputs(src, path, pb2):
        out.layer.add().CopyFrom(layer)
    for layer in src.layer:
        if not io.in_phase(layer, pb2.TEST):
            continue
        if layer.type in TRAINING_ONLY or layer.type.endswith("Loss"):
            inet.dropped.append(f"{layer.name} ({layer.type})")
            continue
        if layer.type in DATA_TYPES:
            chw = tuple(input_shape) if input_shape else _data_chw(layer, path)
            new = out.layer.add(name=layer.name, type="Input")
            new.top.append(layer.top[0])
            new.input_param.shape.add().dim.extend((1,) + chw)
            inet.transform = _transform_dict(layer.transform_param)
            if layer.type == "Data":
                inet.data_source = layer.data_param.source
            elif layer.type == "ImageData":
                inet.data_source = layer.image_data_param.source
            continue
        new = out.layer.add()
        new.CopyFrom(layer)
        del new.include[:]
        del new.exclude[:]
    if not any(layer.type == "Input" for layer in out.layer):
        raise io.UserError(path, "has no input (no Input layer, legacy input: header or "
                                 "data layer)")
    for layer in out.layer:   # Caffe's own batch dim is irrelevant: export with 1
        if layer.type == "Input":
            for shape in layer.input_param.shape:
                if len(shape.dim) and shape.dim[0] != 1:
                    shape.dim[0] = 1
    return inet


def _data_chw(layer, path):
    """(C, H, W) of a data layer: its crop and its mean file's or LMDB's channels."""
    crop = layer.transform_param.crop_size
    tp = layer.transform_param
    if tp.mean_file and os.path.isfile(resolve(tp.mean_file)):
        mean = read_mean(resolve(tp.mean_file))
        c, h, w = mean.shape
        return (c, crop, crop) if crop else (c, h, w)
    if crop and tp.mean_value and len(tp.mean_value) in (1, 3):
        return (3 if len(tp.mean_value) == 3 else 1, crop, crop)
    raise io.UserError(path, f"cannot tell the input shape of data layer '{layer.name}'; "
                             "pass --input-shape C,H,W")


def resolve(p):
    """A path as the prototxts mean it: relative to the cwd, else the repository root."""
    if not p or os.path.isabs(p) or os.path.exists(p):
        return p
    alt = os.path.join(io.REPO_ROOT, p)
    return alt if os.path.exists(alt) else p


def read_mean(path):
    """A Caffe mean .binaryproto as a float32 (C, H, W) array."""
    import numpy as np
    io.require_file(path, "mean file")
    blob = io.caffe_pb2().BlobProto()
    with open(path, "rb") as f:
        try:
            blob.ParseFromString(f.read())
        except Exception:
            raise io.UserError(path, "not a Caffe mean .binaryproto") from None
    arr = np.array(blob.data, np.float32)
    shape = tuple(blob.shape.dim) or (blob.num, blob.channels, blob.height, blob.width)
    if arr.size == 0 or arr.size != int(np.prod(shape)):
        raise io.UserError(path, "not a Caffe mean .binaryproto (no data of its shape)")
    return arr.reshape(shape[-3:])


# ------------------------------------------------------------------ weights

def load(net_path, model_path, input_shape=None):
    """(InferenceNet, caffe Net holding the weights, {layer: [arrays]}).

    The weights are checked against the prototxt twice: by model_size's rules
    (counts, declared shapes, matching types) and by copying them into the
    pycaffe net, which knows every shape; either failure is one error line.
    """
    io.require_file(net_path, "prototxt")
    io.require_file(model_path, "caffemodel")
    inet = inference_net(net_path, input_shape)
    model = io.read_caffemodel(model_path)
    arrays = io.model_arrays(inet.net, model, net_path, model_path)
    cnet = io.open_net(inet.net, "TEST", net_path)
    io.set_net_params(cnet, arrays, model_path)
    return inet, cnet, arrays


def caffe_net(inet, source):
    """A pycaffe Net of an InferenceNet (batch 1; reshape the inputs to batch)."""
    return io.open_net(inet.net, "TEST", source)


def blob_shapes(cnet):
    """{blob: shape} of a pycaffe net (batch as Caffe has it now)."""
    return {name: tuple(b.data.shape) for name, b in cnet.blobs.items()}


def net_arrays(cnet):
    """{layer: [float32 arrays]} of a pycaffe net's parameters (copies)."""
    return {name: [b.data.copy() for b in blobs] for name, blobs in cnet.params.items()}
