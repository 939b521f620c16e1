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

The helpers reading prototxt/caffemodel files with ``caffe_pb2`` live here too,
because every size, binarization and packing command starts from them.
"""
import json
import os
import re
import signal
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

from .caffe_env import import_caffe
from .cli import parser
from .errors import UserError
from .fileio import require_file

MB = 10 ** 6
BINARY, INT8, FP32 = "1-bit", "8-bit", "fp32"
BPC = "BinaryPatternConvolution"
CONV_TYPES = ("Convolution", BPC)
#: Bits a uint8 tensor carries besides its weights: fp32 scale + uint8 zero point.
INT8_EXTRA_BITS = 40
#: Layer types whose weights the BQ variant stores in 8 bits (1 x 1 convs also).
BQ_TYPES = ("InnerProduct",)
_DATA_TYPES = ("Data", "ImageData", "HDF5Data", "WindowData", "MemoryData",
               "AnnotatedData", "DummyData", "Python")

#: The paper's sizes of its small ImageNet nets (PAPER_NOTES section 4).
PAPER_SIZES_MB = {"SEP-Net-R": 5.2, "SEP-Net-B": 4.2, "SEP-Net-BQ": 1.3,
                  "MobileNet 0.5": 5.2, "SqueezeNet": 4.8}


# ---------------------------------------------------------------- reading nets

def caffe_pb2():
    """Caffe's protobuf module (imports pycaffe, which holds the project's layer)."""
    import_caffe()
    from caffe.proto import caffe_pb2 as pb2
    return pb2


def read_prototxt(path):
    """A NetParameter from a text prototxt; one clear error if it is not one."""
    from google.protobuf import text_format
    require_file(path, "prototxt")
    net = caffe_pb2().NetParameter()
    try:
        with open(path, encoding="utf-8") as f:
            text_format.Merge(f.read(), net)
    except UnicodeDecodeError:
        raise UserError(path, "not a text prototxt (binary content; a .caffemodel?)") from None
    except text_format.ParseError as e:
        raise UserError(path, f"not a valid Caffe net prototxt ({e})") from None
    if net.layers and not net.layer:
        raise UserError(path, "legacy V1 prototxt ('layers'); upgrade it with Caffe's "
                              "upgrade_net_proto_text")
    if not net.layer:
        raise UserError(path, "defines no layers (a solver file?)")
    return net


def read_caffemodel(path):
    """A NetParameter with weights from a binary .caffemodel."""
    from google.protobuf.message import DecodeError
    require_file(path, "caffemodel")
    model = caffe_pb2().NetParameter()
    with open(path, "rb") as f:
        data = f.read()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError):
        raise UserError(path, "not a Caffe model (cannot decode it as a binary "
                              "NetParameter)") from None
    if model.layers and not model.layer:
        raise UserError(path, "legacy V1 caffemodel ('layers'); upgrade it with Caffe's "
                              "upgrade_net_proto_binary")
    if not any(layer.blobs for layer in model.layer):
        raise UserError(path, "not a Caffe model with weights (no layer holds blobs)")
    return model


def net_from_model(model, path):
    """The net definition a Caffe-saved model carries (its layers without blobs)."""
    net = caffe_pb2().NetParameter()
    net.CopyFrom(model)
    for layer in net.layer:
        if not layer.type:
            raise UserError(path, "holds no layer definitions; pass the net's prototxt")
        del layer.blobs[:]
    return net


def unique_layers(net):
    """Layers by name, first occurrence first (TRAIN/TEST twins share a name)."""
    seen = {}
    for layer in net.layer:
        seen.setdefault(layer.name, layer)
    return list(seen.values())


def in_phase(layer, phase):
    """Caffe's phase rule (stages and levels ignored): include/exclude by phase."""
    if layer.include:
        return any(not r.HasField("phase") or r.phase == phase for r in layer.include)
    return not any(r.HasField("phase") and r.phase == phase for r in layer.exclude)


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


# ------------------------------------------------------- building pycaffe nets

def _glog_problem(text):
    """The message of Caffe's fatal log line ('F0101 ... file:line] message')."""
    for line in text.splitlines():
        m = re.match(r"^[FE]\d{4,8} [\d:.]+\s+\d+ [^\]]*\] (.*)$", line)
        if m:
            return m.group(1).strip()
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("***")
             and not ln.startswith("    @")]
    return lines[-1].strip() if lines else "Caffe aborted"


def _probe_net(proto_path, phase, timeout=300):
    """Build the net once in a forked child: Caffe aborts the process on a bad
    net, so a failure there becomes a message here instead of a crash. A child
    that hangs (a lock held across the fork) is killed and the probe skipped."""
    import caffe
    import select
    if not hasattr(os, "fork"):
        return None
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 3
        try:
            import faulthandler
            faulthandler.disable()  # Caffe's abort is expected here; no Python dump
            os.close(r)
            os.dup2(w, 2)
            os.dup2(w, 1)
            caffe.Net(proto_path, phase)
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    chunks, deadline = [], time.monotonic() + timeout
    with os.fdopen(r, "rb", buffering=0) as f:
        while True:
            ready, _, _ = select.select([f], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return None
            chunk = f.read(65536)
            if not chunk:
                break
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    if status == 0:
        return None
    text = b"".join(chunks).decode("utf-8", "replace")
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) not in (signal.SIGABRT, signal.SIGSEGV):
        return f"Caffe was killed by signal {os.WTERMSIG(status)}"
    return _glog_problem(text)


def _check_sources(net, phase, source):
    """Name a missing data source before Caffe aborts on it."""
    pb2 = caffe_pb2()
    for layer in net.layer:
        if not in_phase(layer, getattr(pb2, phase)):
            continue
        if layer.type == "Data":
            src, is_dir = layer.data_param.source, \
                layer.data_param.backend == type(layer.data_param).LMDB
        elif layer.type == "ImageData":
            src, is_dir = layer.image_data_param.source, False
        else:
            continue
        if not (os.path.isdir(src) if is_dir else os.path.isfile(src)):
            raise UserError(source, f"data layer '{layer.name}' reads {src or '(no source)'}, "
                                    "which does not exist")


def open_net(net, phase, source):
    """A pycaffe Net built from a NetParameter, or one clear error naming `source`."""
    caffe = import_caffe()
    from google.protobuf import text_format
    caffe_phase = caffe.TEST if phase == "TEST" else caffe.TRAIN
    _check_sources(net, phase, source)
    fd, tmp = tempfile.mkstemp(prefix="sepnets-", suffix=".prototxt")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text_format.MessageToString(net))
        problem = _probe_net(tmp, caffe_phase)
        if problem:
            raise UserError(source, f"Caffe cannot build the {phase} net: {problem}")
        return caffe.Net(tmp, caffe_phase)
    finally:
        os.remove(tmp)


def set_net_params(cnet, arrays, source):
    """Copy {layer: [arrays]} into a pycaffe Net, checking every shape first.

    A BinaryPatternConvolution given only [W, bias] (a stock model) gets
    alpha = 0, i.e. unbound: the layer binds it to mean |W_c| when it runs.
    """
    types = dict(zip(cnet._layer_names, (layer.type for layer in cnet.layers)))
    plan = []
    for name, blobs in arrays.items():
        if name not in cnet.params:
            continue
        have = cnet.params[name]
        unbound = types.get(name) == BPC and len(blobs) == len(have) - 1
        if len(have) != len(blobs) and not unbound:
            raise UserError(source, f"layer '{name}' has {len(blobs)} blobs but the net "
                                    f"needs {len(have)}: model and prototxt do not match")
        for i, (dst, src) in enumerate(zip(have, blobs)):
            if dst.data.size != src.size or (dst.data.shape != src.shape
                                             and dst.data.squeeze().shape != src.squeeze().shape):
                raise UserError(source, f"layer '{name}' blob {i} has shape "
                                        f"{_fmt_shape(src.shape)} but the net needs "
                                        f"{_fmt_shape(dst.data.shape)}: model and prototxt "
                                        "do not match")
        plan.append((have, blobs, unbound))
    for have, blobs, unbound in plan:
        for dst, src in zip(have, blobs):
            dst.data[...] = src.reshape(dst.data.shape)
        if unbound:
            have[-1].data[...] = 0


def _data_shape(layer, source):
    """The (C, H, W) a data layer produces, from its LMDB or its crop/resize."""
    crop = layer.transform_param.crop_size
    if layer.type == "MemoryData":
        mp = layer.memory_data_param
        return (mp.channels, mp.height, mp.width)
    if layer.type == "Data" and layer.data_param.backend == type(layer.data_param).LMDB:
        src = layer.data_param.source
        if os.path.isdir(src):
            import lmdb
            datum = caffe_pb2().Datum()
            with lmdb.open(src, readonly=True, lock=False) as env, env.begin() as txn:
                for _, value in txn.cursor():
                    datum.ParseFromString(value)
                    break
            if datum.channels:
                return (datum.channels,) + ((crop, crop) if crop else (datum.height, datum.width))
    if layer.type == "ImageData" and crop:
        return (3 if layer.image_data_param.is_color else 1, crop, crop)
    raise UserError(source, f"cannot infer the input shape of data layer '{layer.name}' "
                            "(its source is not readable here); pass --input-shape C,H,W "
                            "or a caffemodel")


def with_input_layers(net, phase, source, input_shape=None):
    """The phase's net with its data layers replaced by Input layers of batch 1,
    so parameter shapes can be known without the data sources."""
    pb2 = caffe_pb2()
    caffe_phase = pb2.TEST if phase == "TEST" else pb2.TRAIN
    out = pb2.NetParameter()
    out.CopyFrom(net)
    del out.layer[:]
    for layer in net.layer:
        if not in_phase(layer, caffe_phase):
            continue
        if layer.type in _DATA_TYPES:
            chw = tuple(input_shape) if input_shape else _data_shape(layer, source)
            new = out.layer.add()
            new.name, new.type = layer.name, "Input"
            new.top.extend(layer.top)
            for i, _ in enumerate(layer.top):
                new.input_param.shape.add().dim.extend((1,) + chw if i == 0 else (1,))
            continue
        new = out.layer.add()
        new.CopyFrom(layer)
        del new.include[:]
        del new.exclude[:]
    return out


def net_param_shapes(net, source, input_shape=None):
    """{layer: [shape, ...]} of the TEST net, from a pycaffe instance of it."""
    cnet = open_net(with_input_layers(net, "TEST", source, input_shape), "TEST", source)
    return {name: [tuple(b.data.shape) for b in blobs] for name, blobs in cnet.params.items()}


# ------------------------------------------------------------ precision rules

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


def format_summary(s):
    """A Larq-style text table: one row per parameter layer, then the totals."""
    head = ("Layer", "Type", "Kernel", "Precision", "Params", "Bits", "Bytes")
    rows = [(lay.name, lay.type, lay.kernel or "-", lay.precision, f"{lay.params:,}",
             f"{lay.bits:,}", f"{lay.nbytes:,}") for lay in s.layers]
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    right = (False, False, False, False, True, True, True)

    def fmt(r):
        return "| " + "  ".join(c.rjust(w) if rt else c.ljust(w)
                                for c, w, rt in zip(r, widths, right)) + " |"
    width = len(fmt(head))
    title = f"+{s.name} stats"
    lines = [title + "-" * (width - len(title) - 1) + "+", fmt(head)]
    lines += [fmt(r) for r in rows]
    lines.append("+" + "-" * (width - 2) + "+")
    by = s.params_by_precision()
    totals = [("Total params", f"{s.params:,}")]
    totals += [(f"  {p} params", f"{by[p]:,}") for p in (BINARY, INT8, FP32)]
    totals += [("Model size as stored", f"{s.nbytes / MB:.4f} MB ({s.nbytes:,} bytes)"),
               ("Model size if all fp32", f"{s.fp32_bytes / MB:.4f} MB ({s.fp32_bytes:,} bytes)"),
               ("Compression ratio", f"{s.ratio:.2f}x")]
    tw = max(len(a) for a, _ in totals)
    vw = max(len(b) for _, b in totals)
    title = f"+{s.name} summary"
    box = tw + vw + 6
    lines.append(title + "-" * max(1, box - len(title) - 1) + "+")
    lines += [f"| {a.ljust(tw)}  {b.rjust(vw)} |" for a, b in totals]
    lines.append("+" + "-" * (box - 2) + "+")
    lines.append("1-bit weights carry one fp32 scale per filter; 8-bit weights a fp32 scale "
                 "and uint8 zero point per tensor; MB = 10^6 bytes.")
    return "\n".join(lines)


# ------------------------------------------------------------- the catalog

#: Catalog names of the paper's small nets; SEP-Net-BQ is SEP-Net-B counted with --bq.
PAPER_NAMES = {"sepnet-r": "SEP-Net-R", "sepnet-b": "SEP-Net-B",
               "mobilenet-0.5": "MobileNet 0.5", "squeezenet": "SqueezeNet"}
BQ_OF = {"sepnet-b": "SEP-Net-BQ"}


def catalog_summaries():
    """[(row name, Entry, Summary)] for every generated net's deploy prototxt
    (fix-pattern nets: their parent's deploy with the pattern layers baked),
    plus SEP-Net-BQ = SEP-Net-B with 8-bit 1x1/FC weights."""
    try:
        from .netgen.catalog import catalog
    except ImportError as e:
        raise UserError("sepnets.netgen.catalog", f"not available ({e})") from None
    from . import REPO_ROOT
    out, shapes = [], {}
    for e in catalog():
        deploy = os.path.join(REPO_ROOT, e.deploy)
        net = read_prototxt(deploy)
        if deploy not in shapes:  # fix-pattern nets share their parent's deploy
            shapes[deploy] = net_param_shapes(net, deploy)
        baked = tuple(e.pattern_layers) if e.kind == "fix-pattern" else ()
        for row, bq in [(e.name, False)] + ([(BQ_OF[e.name], True)] if e.name in BQ_OF else []):
            layers = net_layer_sizes(net, deploy, bq, baked=baked, shapes=shapes[deploy])
            out.append((row, e, Summary(row, layers)))
    return out


def paper_size(row):
    return PAPER_SIZES_MB.get(PAPER_NAMES.get(row, row))


def format_catalog(rows):
    lines = ["| Net | Kind | Params | fp32 size (MB) | Size as stored (MB) | Ratio "
             "| Paper (MB) |", "|---|---|---:|---:|---:|---:|---:|"]
    for row, e, s in rows:
        paper = paper_size(row)
        kind = "pattern (BQ)" if row in BQ_OF.values() else e.kind
        lines.append(f"| {row} | {kind} | {s.params / 1e6:.3f} M | {s.fp32_bytes / MB:.2f} | "
                     f"{s.nbytes / MB:.2f} | {s.ratio:.1f}x | "
                     f"{'' if paper is None else f'{paper:.1f}'} |")
    return "\n".join(lines)


# ------------------------------------------------------------------ command

def _shape_arg(text):
    try:
        dims = tuple(int(x) for x in text.split(","))
        if len(dims) != 3 or min(dims) < 1:
            raise ValueError
        return dims
    except ValueError:
        raise UserError("--input-shape", f"'{text}' is not C,H,W (three positive integers)") \
            from None


def main(argv=None):
    p = parser("model_summary.py",
               "Per-layer storage table and model size of a Caffe net: binary patterns at "
               "1 bit per weight (+ fp32 alpha per filter), BQ 1x1/FC weights at 8 bits, "
               "everything else fp32; MB = 10^6 bytes.",
               ["python tools/model_summary.py prototxt/cifar10-resnet20/deploy.prototxt",
                "python tools/model_summary.py prototxt/cifar10-resnet20-pattern-mean/deploy.prototxt r20_pattern.caffemodel",
                "python tools/model_summary.py prototxt/sepnet-b/deploy.prototxt --bq",
                "python tools/model_summary.py --all"])
    p.add_argument("prototxt", nargs="?", help="net definition (train_val or deploy)")
    p.add_argument("caffemodel", nargs="?",
                   help="trained weights: shapes come from here, and stock Convolutions "
                        "holding baked +/-a filters count as binary")
    p.add_argument("--bq", action="store_true",
                   help="SEP-Net-BQ: count 1x1 conv and fully connected weights as 8-bit")
    p.add_argument("--input-shape", metavar="C,H,W",
                   help="input shape for prototxts whose data source is not readable here "
                        "(only needed without a caffemodel)")
    p.add_argument("--baked", nargs="+", default=(), metavar="LAYER",
                   help="without a caffemodel: count these stock Convolutions as holding "
                        "baked +/-a patterns (release-style fix-pattern nets)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--all", action="store_true",
                   help="a Markdown table of every generated net (sepnets.netgen.catalog) "
                        "beside the paper's sizes")
    a = p.parse_args(argv)
    if a.all:
        rows = catalog_summaries()
        if a.json:
            print(json.dumps([dict(s.as_dict(), paper_mb=paper_size(row)) for row, _, s in rows],
                             indent=1))
        else:
            print(format_catalog(rows))
        return 0
    if not a.prototxt:
        p.error("a prototxt is required (or --all)")
    shape = _shape_arg(a.input_shape) if a.input_shape else None
    s = summarize(a.prototxt, a.caffemodel, a.bq, shape, tuple(a.baked))
    print(json.dumps(s.as_dict(), indent=1) if a.json else format_summary(s))
    return 0
