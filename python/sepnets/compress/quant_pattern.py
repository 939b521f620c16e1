"""``tools/quant_pattern.py``: binarize a trained model's k x k convolutions
(:mod:`sepnets.compress.binarize`) and write the pattern net and model, or
sweep the offsets and the mean scale on cached validation batches
(``--sweep``) to pick one, as the release tuned its offset by hand.
"""
import math
import os

import numpy as np

from ..caffeio.blobs import kernel_dims, kernel_label, model_arrays
from ..caffeio.proto import (caffe_pb2, in_phase, net_from_model, read_caffemodel,
                             read_prototxt, unique_layers)
from ..caffeio.pycaffe import open_net, set_net_params
from ..errors import UserError
from ..fileio import refuse_overwrite, write_files_together
from .binarize import (MEAN, bake, parse_kernel, parse_sweep, pattern_model,  # noqa: F401
                       pattern_net, scales_for, select_layers)


def _metric_blob(net, path, metric):
    """(blob, higher_is_better): the chosen metric, else the first top-1
    Accuracy of the TEST net, else its first loss."""
    pb2 = caffe_pb2()
    test = [layer for layer in net.layer if in_phase(layer, pb2.TEST)]
    if metric:
        if not any(metric in layer.top for layer in test):
            raise UserError(path, f"the TEST net has no blob '{metric}' (--metric)")
        loss = any(metric in layer.top and layer.type.endswith("Loss") for layer in test)
        return metric, not loss
    for layer in test:
        if layer.type == "Accuracy" and layer.accuracy_param.top_k == 1:
            return layer.top[0], True
    for layer in test:
        if layer.type.endswith("Loss"):
            return layer.top[0], False
    raise UserError(path, "the TEST net has no Accuracy or loss layer to rank the sweep by")


class CachedBatches:
    """Forward passes over the same validation batches for every candidate:
    the data layers run once per batch and their outputs are replayed."""

    def __init__(self, cnet, batches, path):
        names = list(cnet._layer_names)
        self.net = cnet
        bottoms = cnet.bottom_names
        first = next((i for i, n in enumerate(names) if bottoms[n]), None)
        if first is None or any(not bottoms[n] for n in names[first:]):
            raise UserError(path, "the TEST net must start with its data layers")
        sources = [cnet.layers[i].type for i in range(first)]
        if all(t == "Input" for t in sources):
            raise UserError(path, "the TEST net reads no data (Input layers only); pass "
                                  "--val-prototxt with a data layer")
        self.start = names[first]
        self.feed = [t for n in names[:first] for t in cnet.top_names[n]]
        self.cache = []
        for _ in range(batches):
            cnet.forward()
            self.cache.append({t: cnet.blobs[t].data.copy() for t in self.feed})

    def run(self, blobs):
        """{blob: list of per-batch copies} for the current weights."""
        out = {b: [] for b in blobs}
        for feed in self.cache:
            for t, v in feed.items():
                self.net.blobs[t].data[...] = v
            self.net.forward(start=self.start)
            for b in blobs:
                out[b].append(self.net.blobs[b].data.copy())
        return out

    @property
    def images(self):
        return sum(next(iter(f.values())).shape[0] for f in self.cache)


def spread_validation(val_net, batches, tmp):
    """A copy of `val_net` whose TEST LMDB Data layers read `batches` batches
    spread over their whole LMDB (every k-th record, copied under `tmp`)
    instead of its first records, and one note per layer changed.

    Why: a sweep on part of a validation set reads its first records, and a
    set stored class by class (like the CIFAR-10 test LMDB here) would then
    rank the scales on one or two classes."""
    from ..data.datum_lmdb import lmdb_count as lmdb_entries, lmdb_subset
    pb2 = caffe_pb2()
    net = pb2.NetParameter()
    net.CopyFrom(val_net)
    notes = []
    for layer in net.layer:
        dp = layer.data_param
        if layer.type != "Data" or not in_phase(layer, pb2.TEST) or \
                dp.backend != pb2.DataParameter.LMDB or not os.path.isdir(dp.source):
            continue
        n, total = batches * dp.batch_size, lmdb_entries(dp.source)
        if n >= total:
            continue
        dst = os.path.join(tmp, f"{len(notes)}_lmdb")
        lmdb_subset(dp.source, dst, n)
        notes.append(f"{layer.name}: {n} of the {total} records of {dp.source}, "
                     f"every {total / n:g}th")
        dp.source = dst
    return net, notes


def sweep(val_net, val_path, arrays, model_path, selected, offsets, batches, metric=None):
    """Evaluate the full model, the mean scale and each offset on the same
    batches, spread over the validation set (:func:`spread_validation`).
    Returns (rows, best scale, metric blob, images, notes); rows are (label,
    scale, metric value, loss or None), the first row being the full-precision
    model."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="sepnets-sweep-") as tmp:
        val_net, notes = spread_validation(val_net, batches, tmp)
        return _sweep(val_net, val_path, arrays, model_path, selected, offsets, batches,
                      metric) + (notes,)


def _sweep(val_net, val_path, arrays, model_path, selected, offsets, batches, metric):
    blob, higher = _metric_blob(val_net, val_path, metric)
    pb2 = caffe_pb2()
    loss_blob = next((layer.top[0] for layer in val_net.layer
                      if in_phase(layer, pb2.TEST) and layer.type.endswith("Loss")), None)
    cnet = open_net(val_net, "TEST", val_path)
    for name in selected:
        if name not in cnet.params:
            raise UserError(val_path, f"the TEST net has no layer '{name}' to binarize")
        layer_type = cnet.layers[list(cnet._layer_names).index(name)].type
        if layer_type != "Convolution":
            raise UserError(val_path, f"layer '{name}' is {layer_type} in the validation net; "
                                      "it must be the stock Convolution of the trained model")
    set_net_params(cnet, arrays, model_path)
    data = CachedBatches(cnet, batches, val_path)
    wanted = [blob] + ([loss_blob] if loss_blob and loss_blob != blob else [])

    def evaluate():
        res = data.run(wanted)
        val = float(np.mean([np.asarray(v).ravel()[0] for v in res[blob]]))
        loss = (float(np.mean([np.asarray(v).ravel()[0] for v in res[loss_blob]]))
                if loss_blob else None)
        return val, loss

    rows = [("full precision", None) + evaluate()]
    for scale in [MEAN] + list(offsets):
        for name in selected:
            w = arrays[name][0]
            cnet.params[name][0].data[...] = bake(w, scales_for(w, scale))
        label = "mean |W| per filter" if scale == MEAN else f"offset {scale:g}"
        rows.append((label, scale) + evaluate())
    sign = 1 if higher else -1
    # rank by the metric, then by the lower loss; remaining ties: the earlier row
    best = max(rows[1:], key=lambda r: (sign * r[2], -r[3] if r[3] is not None else 0))
    return rows, best[1], blob, data.images


def format_sweep(rows, blob, best, images, batches):
    w = max(len(r[0]) for r in rows)
    lines = [f"{'scale'.ljust(w)}  {blob:>10}  {'loss':>10}"]
    for label, scale, val, loss in rows:
        mark = "  <- best" if scale is not None and scale == best else ""
        loss_s = f"{loss:10.4f}" if loss is not None else f"{'-':>10}"
        lines.append(f"{label.ljust(w)}  {val:10.4f}  {loss_s}{mark}")
    lines.append(f"({batches} batches, {images} images; ties go to the lower loss, then the "
                 "earlier row)")
    return "\n".join(lines)


# ------------------------------------------------------------------ command

def output_paths(output, model_path, scale):
    """(prototxt, caffemodel) for -o OUT (an extension on OUT is dropped)."""
    if output:
        stem = output
        for ext in (".caffemodel", ".prototxt"):
            if stem.endswith(ext):
                stem = stem[: -len(ext)]
    else:
        base = os.path.splitext(model_path)[0]
        stem = base + ("_pattern_mean" if scale == MEAN else f"_quant_{scale:g}")
    return stem + ".prototxt", stem + ".caffemodel"


def command(a):
    """What ``tools/quant_pattern.py`` does with its parsed command line."""

    if a.offset is not None and not (a.offset > 0 and math.isfinite(a.offset)):
        raise UserError("--offset", f"{a.offset} must be a finite value > 0")
    if a.as_layer and a.offset is None and not a.sweep:
        raise UserError("--as-layer", "goes with --offset or --sweep")
    if a.batches < 1:
        raise UserError("--batches", "must be at least 1")
    offsets = parse_sweep(a.sweep) if a.sweep else None
    if (a.val_prototxt or a.metric) and not a.sweep:
        raise UserError("--val-prototxt" if a.val_prototxt else "--metric", "goes with --sweep")

    model = read_caffemodel(a.model)
    net_path = a.prototxt or a.model
    net = read_prototxt(a.prototxt) if a.prototxt else net_from_model(model, a.model)
    selected = select_layers(net, net_path, a.filter, a.layers, a.skip)
    arrays = model_arrays(net, model, net_path, a.model)
    missing = [n for n in selected if n not in arrays]
    if missing:
        raise UserError(a.model, f"has no weights for layer '{missing[0]}'")

    if offsets is not None:
        val_path = a.val_prototxt or net_path
        val_net = read_prototxt(a.val_prototxt) if a.val_prototxt else net
        rows, scale, blob, images, notes = sweep(val_net, val_path, arrays, a.model, selected,
                                                 offsets, a.batches, a.metric)
        print(format_sweep(rows, blob, scale, images, a.batches))
        for note in notes:
            print(f"validation data: {note}")
    else:
        scale = a.offset if a.offset is not None else MEAN

    out_proto, out_model = output_paths(a.output, a.model, scale)
    for out in (out_proto, out_model):
        refuse_overwrite(out, a.model, a.prototxt, a.val_prototxt)
    new_net = pattern_net(net, selected, scale, a.as_layer)
    new_model = pattern_model(model, new_net, selected, scale)
    from google.protobuf import text_format
    # The pair lands together (prototxt last): a new model beside the old
    # prototxt would load with the wrong layer types.
    write_files_together([(out_model, new_model.SerializeToString()),
                          (out_proto, text_format.MessageToString(new_net).encode())])
    defs = {layer.name: layer for layer in unique_layers(net)}
    kinds = ", ".join(f"{n} ({kernel_label(kernel_dims(defs[n]))})" for n in selected)
    rule = "alpha = mean |W| per filter" if scale == MEAN else f"+/-{scale:g}"
    print(f"binarized {len(selected)} layer(s) with {rule}: {kinds}")
    print(f"wrote {out_proto} and {out_model}")
    return 0
