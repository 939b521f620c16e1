"""Reading and writing Caffe's protobuf files: net prototxts, caffemodels,
solvers and solver states, through one ``caffe_pb2``.

Every command of the project starts from these files, so each problem with
one (missing, binary where text was expected, a legacy V1 net, a solver
given as a net) is one clear error naming the file instead of a protobuf
traceback or Caffe's abort.
"""
import importlib.util
import os
import sys

from google.protobuf import text_format

from ..errors import UserError
from ..fileio import require_file, write_bytes_atomic, write_text_atomic

_PB2_NAME = "caffe.proto.caffe_pb2"


def _caffe_python_dirs():
    spec = importlib.util.find_spec("caffe")
    if spec and spec.submodule_search_locations:
        yield from spec.submodule_search_locations
    from .env import _paths_file_entries
    for entries in _paths_file_entries():
        if entries.get("caffe_python"):
            yield os.path.join(entries["caffe_python"], "caffe")


def caffe_pb2():
    """The caffe_pb2 module (Datum, BlobProto, NetParameter, ...).

    Imported through pycaffe when it loads (so that the project's layer
    parameters are the ones libcaffe was built with, and
    ``caffe.proto.caffe_pb2`` is an attribute of its package); when pycaffe
    is broken or absent the generated file is loaded alone, which is all the
    data tools need."""
    mod = sys.modules.get(_PB2_NAME)
    if mod is not None:
        return mod
    try:
        from .env import import_caffe
        import_caffe()
        return importlib.import_module(_PB2_NAME)
    except Exception:  # pycaffe broken or absent: load the generated file alone
        pass
    for d in _caffe_python_dirs():
        path = os.path.join(d, "proto", "caffe_pb2.py")
        if os.path.isfile(path):
            spec = importlib.util.spec_from_file_location(_PB2_NAME, path)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[_PB2_NAME] = mod
            try:
                spec.loader.exec_module(mod)
            except BaseException:
                del sys.modules[_PB2_NAME]
                raise
            return mod
    raise UserError("caffe_pb2", "Caffe's generated protobuf module not found; "
                    "run 'bash scripts/setup.sh' and use the project's Python (.venv)")


def read_prototxt(path):
    """A NetParameter from a text prototxt; one clear error if it is not one."""
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


def phase_of(layer):
    """The one phase a layer is included in, or None (both phases)."""
    phases = {r.phase for r in layer.include if r.HasField("phase")}
    return phases.pop() if len(phases) == 1 else None


def read_solver(path):
    """A SolverParameter from a text solver prototxt."""
    s = caffe_pb2().SolverParameter()
    try:
        with open(path) as f:
            text_format.Merge(f.read(), s)
    except OSError as e:
        raise UserError(path, f"cannot read solver ({e.strerror})") from None
    except text_format.ParseError as e:
        raise UserError(path, f"not a valid Caffe solver ({e})") from None
    return s


def _header(what, by):
    return (f"# {what}\n# Written by {by} for this run; paths are relative "
            "to the repository root (caffe runs there).\n")


def write_message(path, msg, what, by="tools/run_experiment.py"):
    """Write a net or solver as text prototxt (atomically), headed by what it is."""
    write_text_atomic(path, _header(what, by) + text_format.MessageToString(msg))


def write_model(path, model):
    """Write a NetParameter with weights as a binary caffemodel (atomically)."""
    write_bytes_atomic(path, model.SerializeToString())


def reset_batchnorm_stats(model_path, out_path):
    """Write a copy of a caffemodel whose BatchNorm running statistics are
    emptied (mean, variance and Caffe's scale factor all 0); return how many
    BatchNorm layers were emptied.

    After binarization the full-precision statistics no longer describe the
    activations. Caffe's moving average (fraction 0.999, its scale factor
    saturated at about 1000 after a long run) forgets them only over thousands
    of iterations, and the test net uses them all along: in the real ResNet-20
    run, fine-tuning reached 86% training accuracy while the test net, still
    normalising with stale statistics, scored 30%. With the scale factor at 0
    Caffe re-estimates the statistics from the fine-tuning batches alone."""
    model = caffe_pb2().NetParameter()
    with open(model_path, "rb") as f:
        model.ParseFromString(f.read())
    reset = 0
    for layer in model.layer:
        if layer.type == "BatchNorm":
            for blob in layer.blobs:
                blob.data[:] = [0.0] * len(blob.data)
                blob.double_data[:] = [0.0] * len(blob.double_data)
            reset += 1
    write_model(out_path, model)
    return reset
