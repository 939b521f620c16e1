"""Building pycaffe nets from NetParameters without letting Caffe abort the
process: a bad net is first built in a forked child, so its fatal glog line
becomes one error naming the file; data layers can be swapped for Input
layers so that parameter shapes are known without the data sources.
"""
import os
import re
import signal
import tempfile
import time

from ..errors import UserError
from .blobs import BPC, _fmt_shape
from .env import import_caffe
from .proto import caffe_pb2, in_phase

_DATA_TYPES = ("Data", "ImageData", "HDF5Data", "WindowData", "MemoryData",
               "AnnotatedData", "DummyData", "Python")


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
