"""Classify image files with a trained net, in Caffe or in onnxruntime.

The point of exporting is to run the net elsewhere; this command shows it
runs the same: --compare puts both backends on the same batches and prints
their largest difference. Images in class-named folders (test/cat/0001.jpg)
also get an accuracy, so a whole test set can be checked.
"""
import json
import os
import sys
import time

import numpy as np

from . import _caffeio as io
from . import netdef, preprocess
from .runtime import CaffeBackend, OnnxBackend


def _split_models(paths):
    kinds = {".prototxt": "prototxt", ".caffemodel": "caffemodel", ".onnx": "onnx"}
    out = {}
    for p in paths:
        kind = kinds.get(os.path.splitext(p)[1].lower())
        if kind is None:
            raise io.UserError(p, "--model takes .prototxt, .caffemodel and .onnx files")
        if kind in out:
            raise io.UserError(p, f"--model names two {kind} files")
        io.require_file(p, f"{kind} file")
        out[kind] = p
    if "onnx" not in out and not ("prototxt" in out and "caffemodel" in out):
        raise io.UserError(" ".join(paths), "--model needs NET.prototxt MODEL.caffemodel "
                                            "and/or NET.onnx")
    if ("prototxt" in out) != ("caffemodel" in out):
        missing = "caffemodel" if "prototxt" in out else "prototxt"
        raise io.UserError(" ".join(paths), f"--model: a {missing} is needed with it")
    return out


def _onnx_preprocess_record(path):
    import onnx
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception:
        raise io.UserError(path, "not an ONNX model") from None
    for p in model.metadata_props:
        if p.key == "sepnets.preprocess":
            return json.loads(p.value)
    return None


def resolve_preprocess(models, train_val=None, data_dir=None):
    """The Preprocess for the models: --train-val, else the model prototxt's
    own TEST data layer, else what the ONNX export recorded."""
    if train_val:
        return preprocess.from_train_val(train_val, data_dir)
    if "prototxt" in models:
        inet = netdef.inference_net(models["prototxt"], input_shape=(1, 1, 1))
        if inet.transform or inet.data_source:
            return preprocess.from_records(inet.transform, inet.data_source, data_dir)
    if "onnx" in models:
        rec = _onnx_preprocess_record(models["onnx"])
        if rec:
            return preprocess.from_records(rec["transform"], rec["data_source"], data_dir)
    raise io.UserError(models.get("prototxt") or models["onnx"],
                       "does not say how its inputs were preprocessed (a deploy net): pass "
                       "--train-val TRAIN_VAL.prototxt, whose TEST data layer does")


def make_backend(name, models):
    if name == "caffe":
        if "caffemodel" not in models:
            raise io.UserError(models["onnx"], "--backend caffe needs NET.prototxt "
                                               "MODEL.caffemodel in --model")
        inet, _cnet, arrays = netdef.load(models["prototxt"], models["caffemodel"])
        return CaffeBackend(inet, arrays, models["prototxt"])
    if "onnx" in models:
        return OnnxBackend(models["onnx"])
    from .onnx_export import export   # exported in memory, INT2 patterns
    return OnnxBackend(export(models["prototxt"], models["caffemodel"]))


def _progress(done, total, t0, stream=sys.stderr):
    width = 30
    fill = int(width * done / total)
    rate = done / max(time.time() - t0, 1e-9)
    stream.write(f"\r[{'#' * fill}{'.' * (width - fill)}] {done}/{total} images, "
                 f"{rate:.0f}/s")
    if done == total:
        stream.write("\n")
    stream.flush()


def classify(backends, pre, files, batch=100, top=5, progress=False):
    """Scores of every file from every backend: {backend: (N, classes)}."""
    scores = {b.name: [] for b in backends}
    t0 = time.time()
    for s in range(0, len(files), batch):
        x = pre([p for p, _ in files[s:s + batch]])
        for b in backends:
            if x.shape[1:] != tuple(_input_shape(b)):
                raise io.UserError(files[s][0], f"preprocessed to {x.shape[1:]}, but the "
                                                f"net takes {tuple(_input_shape(b))}")
            out = b.run({b.inputs[0]: x})
            scores[b.name].append(out[b.outputs[-1]].reshape(len(x), -1))
        if progress:
            _progress(min(s + batch, len(files)), len(files), t0)
    return {k: np.concatenate(v) for k, v in scores.items()}


def _input_shape(backend):
    if isinstance(backend, CaffeBackend):
        return backend.cnet.blobs[backend.inputs[0]].data.shape[1:]
    return backend.session.get_inputs()[0].shape[1:]


def format_table(files, scores, names, top):
    head = ["image"] + [f"#{i + 1}" for i in range(top)]
    rows = []
    for (path, _), s in zip(files, scores):
        order = np.argsort(-s, kind="stable")[:top]
        rows.append([path] + [f"{names[j] if j < len(names) else j} ({s[j]:.3f})"
                              for j in order])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def accuracy(files, scores, names, top):
    """(top-1, top-k, count) over files whose folder names a class, or None."""
    index = {n: i for i, n in enumerate(names)}
    labelled = [(i, index[lab]) for i, (_, lab) in enumerate(files) if lab in index]
    if not labelled:
        return None
    idx, y = np.array([i for i, _ in labelled]), np.array([c for _, c in labelled])
    order = np.argsort(-scores[idx], axis=1, kind="stable")
    return (float(np.mean(order[:, 0] == y)),
            float(np.mean((order[:, :top] == y[:, None]).any(axis=1))), len(y))


def command(a):
    """What ``tools/classify.py`` does with its parsed command line."""
    if a.top < 1 or a.batch < 1:
        raise io.UserError("--top/--batch", "must be positive")
    # --model takes 1-3 files and argparse cannot tell where they end: the
    # images are what follows the last model file
    model_ext = (".prototxt", ".caffemodel", ".onnx")
    while a.model and not a.model[-1].lower().endswith(model_ext):
        a.images.insert(0, a.model.pop())
    if not a.images:
        raise io.UserError(None, "no IMAGES or FOLDER given")
    models = _split_models(a.model)
    files = preprocess.image_files(a.images)
    pre = resolve_preprocess(models, a.train_val, a.data)
    for note in pre.notes:
        print(f"note: {note}", file=sys.stderr)
    if a.compare:
        names = ["caffe", "onnxruntime"]
    else:
        names = [a.backend or ("caffe" if "caffemodel" in models else "onnxruntime")]
    backends = [make_backend(n, models) for n in names]
    show_progress = any(os.path.isdir(x) for x in a.images)
    scores = classify(backends, pre, files, a.batch, a.top, show_progress)
    first = scores[names[0]]
    top = min(a.top, first.shape[1])
    rows = len(files) if a.max_rows < 0 else min(a.max_rows, len(files))
    if rows:
        print(format_table(files[:rows], first[:rows], pre.class_names, top))
    if rows < len(files):
        print(f"({len(files) - rows} more images not shown; --max-rows N)")
    summary = {"images": len(files), "preprocessing": pre.dataset
               + (f" v{pre.version}" if pre.version else ""), "backends": {}}
    for n in names:
        acc = accuracy(files, scores[n], pre.class_names, top)
        summary["backends"][n] = {"top1": acc[0], f"top{top}": acc[1], "labelled": acc[2]} \
            if acc else {}
        if acc:
            print(f"{n}: top-1 {acc[0]:.4f}, top-{top} {acc[1]:.4f} over {acc[2]} images "
                  "labelled by their folder")
    if a.compare:
        c, o = scores["caffe"], scores["onnxruntime"]
        diff = float(np.abs(c - o).max())
        rel = diff / max(float(np.abs(c).max()), 1e-12)
        agree = float(np.mean(c.argmax(1) == o.argmax(1)))
        summary["compare"] = {"max_abs_diff": diff, "max_rel_diff": rel, "top1_agreement": agree}
        print(f"caffe vs onnxruntime: largest difference {diff:.3g} ({rel:.3g} of the largest "
              f"score), top-1 agreement {agree:.4f}")
    if a.json:
        io.refuse_overwrite(a.json, *a.model)
        summary["files"] = [f for f, _ in files]
        summary["scores"] = {n: scores[n].tolist() for n in names}
        io.write_text_atomic(a.json, json.dumps(summary) + "\n")
    return 0
