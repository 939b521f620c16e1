"""The deployment size table: what each generated net takes on disk as a
caffemodel, a .sepnet file and an ONNX file (fp32, and with the pattern signs
as INT2/INT4), beside the paper's sizes.

Every figure is the byte length of a file the project's own code writes for
that net (pycaffe's Net.save, sepnets.compress.pack_model, this package's
exporter), not a formula. Untrained nets get their fillers' random weights
(sizes depend on shapes only); fix-pattern nets get their parent's weights
with the pattern layers baked to +/-offset, as the release stores them; the
trained models in models/ are measured as they are, each through the train_val
of its net (sepnets.deploy.trained).
"""
import os
import tempfile
import time

import numpy as np

from . import _caffeio as io
from . import netdef
from .onnx_export import build_model
from .runtime import random_weights
from .trained import trained_models

COLUMNS = ("caffemodel", ".sepnet", ".onnx fp32", ".onnx INT4", ".onnx INT2")


def _model_file_sizes(inet, arrays, shapes, source, bq=False):
    """{column: bytes} for one net with one set of weights."""
    cnet = netdef.caffe_net(inet, source)
    io.set_net_params(cnet, arrays, source)
    fd, tmp = tempfile.mkstemp(suffix=".caffemodel")
    os.close(fd)
    try:
        cnet.save(tmp)
        sizes = {"caffemodel": os.path.getsize(tmp)}
        model = io.read_caffemodel(tmp)
        sizes[".sepnet"] = len(io.pack_sepnet(inet.net, model, source, tmp, bq))
    finally:
        os.remove(tmp)
    for col, bits in ((".onnx fp32", 32), (".onnx INT4", 4), (".onnx INT2", 2)):
        m = build_model(inet, arrays, shapes, bits, bq and bits != 32, source)
        sizes[col] = len(m.SerializeToString())
    return sizes


def catalog_rows(progress=None, names=None):
    """[(row, kind, {column: bytes}, paper MB or None)] for the generated nets."""
    say = progress or (lambda _m: None)
    rows, weights = [], {}
    for e in io.catalog():
        if names and e.name not in names:
            continue
        t0 = time.time()
        deploy = os.path.join(io.REPO_ROOT, e.deploy)
        inet = netdef.inference_net(deploy)
        if deploy not in weights:
            cnet = netdef.caffe_net(inet, deploy)
            weights[deploy] = (random_weights(inet, cnet, 0), netdef.blob_shapes(cnet))
        arrays, shapes = weights[deploy]
        if e.kind == "fix-pattern":
            arrays = dict(arrays)
            for name in e.pattern_layers:
                w = arrays[name][0]
                arrays[name] = [io.bake(w, np.full(w.shape[0], e.offset, np.float32))] \
                    + list(arrays[name][1:])
        bq = e.kind == "bq"   # SEP-Net-BQ: its pattern net's files with --bq
        sizes = _model_file_sizes(inet, arrays, shapes, deploy, bq)
        rows.append((e.name, "pattern (BQ)" if bq else e.kind, sizes, io.paper_size(e.name)))
        say(f"{e.name}: {time.time() - t0:.1f} s")
    return rows


def trained_rows(progress=None, models=None):
    """Rows for the trained models in models/ (or `models`, TrainedModels),
    each through the train_val of its net; stock Convolutions holding baked
    patterns are detected."""
    say = progress or (lambda _m: None)
    rows = []
    for m in trained_models() if models is None else models:
        proto, model_path = m.path(m.train_val), m.path(m.caffemodel)
        inet, cnet, arrays = netdef.load(proto, model_path, (3, 32, 32))
        sizes = _model_file_sizes(inet, arrays, netdef.blob_shapes(cnet), proto)
        sizes["caffemodel"] = os.path.getsize(model_path)   # the file as trained
        rows.append((f"`{m.caffemodel}`", f"trained ({m.net})", sizes, None))
        say(m.caffemodel)
    return rows


def format_rows(rows):
    head = "| Net | Kind | " + " | ".join(f"{c} (MB)" for c in COLUMNS) + " | Paper (MB) |"
    lines = [head, "|---|---|" + "---:|" * (len(COLUMNS) + 1)]
    for row, kind, sizes, paper in rows:
        cells = [f"{sizes[c] / io.MB:.3f}" for c in COLUMNS]
        lines.append(f"| {row} | {kind} | " + " | ".join(cells)
                     + f" | {'' if paper is None else f'{paper:.1f}'} |")
    return "\n".join(lines)


def report(progress=None, names=None, trained=True):
    rows = catalog_rows(progress, names)
    text = ("Sizes on disk (MB = 10^6 bytes) of the files the project writes for each net; "
            "written by `python tools/export_onnx.py --size-report`.\n\n" + format_rows(rows))
    if trained:
        text += ("\n\nThe trained models in `models/`, each through the train_val of its "
                 "net (Kind: its `prototxt/` folder; caffemodel: the file itself):\n\n"
                 + format_rows(trained_rows(progress)))
    return text + "\n"


BEGIN, END = "<!-- size-report:begin -->", "<!-- size-report:end -->"


def write_report(path, progress=None, names=None, trained=True):
    """Write the report to `path`; a file holding the BEGIN/END markers (the
    deployment doc) gets only the part between them replaced."""
    text = report(progress, names, trained)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            old = f.read()
        if BEGIN not in old or END not in old.split(BEGIN, 1)[1]:
            raise io.UserError(path, f"exists and holds no {BEGIN} ... {END} block to "
                                     "replace; choose a new file")
        head, rest = old.split(BEGIN, 1)
        text = head + BEGIN + "\n" + text + END + rest.split(END, 1)[1]
    io.write_text_atomic(path, text)
    if progress:
        progress(f"wrote {path}")
