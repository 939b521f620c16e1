"""Caffe's snapshots (``<prefix>_iter_N.caffemodel`` + ``.solverstate``): which
exist, which are usable, and pruning old ones.

A snapshot is usable only if its solverstate was written completely (Caffe
writes the caffemodel first, then the solverstate, neither atomically), so
the resume point is the newest snapshot whose two files both check out.
"""
import glob
import os
import re

from .proto import caffe_pb2

_SNAP_RE = re.compile(r"_iter_(\d+)\.solverstate$")


def snapshot_iterations(prefix):
    """Iterations N that have a ``<prefix>_iter_N.solverstate``, newest first."""
    found = []
    for p in glob.glob(glob.escape(prefix) + "_iter_*.solverstate"):
        m = _SNAP_RE.search(p)
        if m:
            found.append(int(m.group(1)))
    return sorted(found, reverse=True)


def snapshot_files(prefix, it):
    return f"{prefix}_iter_{it}.caffemodel", f"{prefix}_iter_{it}.solverstate"


def model_is_complete(path, layer_names=()):
    """The caffemodel parses and holds every named layer (a file cut at a
    layer boundary still parses, but misses the last layers)."""
    from google.protobuf.message import DecodeError
    try:
        with open(path, "rb") as f:
            data = f.read()
        model = caffe_pb2().NetParameter()
        model.ParseFromString(data)
    except (OSError, DecodeError, RuntimeError, ValueError):
        return False
    have = {layer.name for layer in model.layer}
    return bool(have) and all(n in have for n in layer_names) and \
        any(layer.blobs for layer in model.layer)


def state_is_complete(path, it):
    """The solverstate parses, is for iteration `it`, and ends with its last
    field (current_step, written last by the SGD solvers)."""
    from google.protobuf.message import DecodeError
    try:
        with open(path, "rb") as f:
            data = f.read()
        st = caffe_pb2().SolverState()
        st.ParseFromString(data)
    except (OSError, DecodeError, RuntimeError, ValueError):
        return False
    return st.iter == it and len(st.history) > 0 and st.HasField("current_step")


def latest_snapshot(prefix, layer_names=()):
    """(iteration, caffemodel, solverstate) of the newest usable snapshot, or None."""
    for it in snapshot_iterations(prefix):
        model, state = snapshot_files(prefix, it)
        if state_is_complete(state, it) and model_is_complete(model, layer_names):
            return it, model, state
    return None


def prune_snapshots(prefix, keep, protect=()):
    """Delete all but the `keep` newest snapshots (0: keep all). The newest
    may be still being written, so at least two are always kept."""
    if keep <= 0:
        return []
    its = snapshot_iterations(prefix)
    models = []
    for p in glob.glob(glob.escape(prefix) + "_iter_*.caffemodel"):
        m = re.search(r"_iter_(\d+)\.caffemodel$", p)
        if m:
            models.append(int(m.group(1)))
    newest = sorted(set(its) | set(models), reverse=True)
    removed = []
    for it in newest[max(keep, 2):]:
        if it in protect:
            continue
        for f in snapshot_files(prefix, it):
            try:
                os.remove(f)
                removed.append(f)
            except FileNotFoundError:
                pass
    return removed
