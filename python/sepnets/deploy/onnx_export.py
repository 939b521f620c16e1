"""Caffe net + weights -> ONNX model, with pattern signs kept small.

Caffe names blobs, not values: in-place layers (BatchNorm, Scale, ReLU on the
convolution's top) rewrite one blob several times. The exporter therefore
walks the net once to give every written version of a blob its own ONNX value
and to find each version's consumers; a version's last write keeps the
Caffe blob name, so the graph's outputs are named as Caffe's are.

With the consumers known, BatchNorm and per-channel Scale layers right after
a Convolution / BinaryPatternConvolution / InnerProduct, whose input nobody
else reads, are folded into that layer's weights and bias (exact algebra:
y = k * conv(x) + c). Anything else stays a BatchNormalization (merged with
a following per-channel Scale) or Mul/Add node.

Opset: INT2 tensors need opset 25 (IR 13), INT4 opset 21 (IR 10); INT8 and
float models use opset 21 too.
"""
import json
import os
from collections import defaultdict

import onnx
from onnx import TensorProto, helper

from . import _caffeio as io
from . import netdef
from .onnx_layers import (CONVERTERS, Builder, Fold, Refused, batch_norm,
                          bn_uses_global_stats, per_channel_scale)

PATTERN_BITS = (2, 4, 8, 32)
OPSET = {2: (25, 13), 4: (21, 10), 8: (21, 10), 32: (21, 10)}
WEIGHT_TYPES = ("Convolution", io.BPC, "InnerProduct")
ALIAS_TYPES = ("Split", "Dropout")
SUPPORTED = sorted(set(CONVERTERS) | set(ALIAS_TYPES) | {"Input"})


class _Walk:
    """Blob versions: each layer's inputs/outputs as (blob, version) and
    each version's consuming layers."""

    def __init__(self, layers):
        ver = defaultdict(lambda: -1)
        self.ins, self.outs = [], []
        self.consumers = defaultdict(list)
        self.inputs = set()
        for i, layer in enumerate(layers):
            ins = []
            for bot in layer.bottom:
                if ver[bot] < 0:
                    raise io.UserError(None, f"layer '{layer.name}' ({layer.type}) reads blob "
                                             f"'{bot}', which no earlier layer produces")
                ins.append((bot, ver[bot]))
                self.consumers[(bot, ver[bot])].append(i)
            outs = []
            for top in layer.top:
                ver[top] += 1
                outs.append((top, ver[top]))
                if layer.type == "Input":
                    self.inputs.add((top, ver[top]))
            self.ins.append(ins)
            self.outs.append(outs)
        self.last = dict(ver)
        consumed = set(self.consumers)
        self.outputs = [(b, v) for outs in self.outs for b, v in outs
                        if (b, v) not in consumed and v == self.last[b]
                        and (b, v) not in self.inputs]

    def name(self, blob, version):
        if (blob, version) in self.inputs and version == 0:
            return blob
        if version == self.last[blob] and (blob, 0) not in self.inputs:
            return blob
        return f"{blob}.{version}"


def _plan_folds(layers, walk, arrays, shapes):
    """{weight layer index: [affine layer indices]} and the merged BN+Scale pairs."""
    folds, merged, taken = {}, {}, set()

    def sole_consumer(i):
        if len(walk.outs[i]) != 1:
            return None
        out = walk.outs[i][0]
        users = walk.consumers.get(out, [])
        if len(users) != 1 or out in walk.outputs:
            return None
        j = users[0]
        return j if len(layers[j].bottom) == 1 else None

    def foldable(j):
        layer = layers[j]
        shape = shapes[layer.bottom[0]]
        if layer.type == "BatchNorm":
            return bn_uses_global_stats(layer)
        return layer.type == "Scale" and per_channel_scale(layer, shape) \
            and layer.name in arrays
    for i, layer in enumerate(layers):
        if layer.type in WEIGHT_TYPES:
            chain, cur = [], i
            while True:
                j = sole_consumer(cur)
                if j is None or not foldable(j):
                    break
                chain.append(j)
                cur = j
            if chain:
                folds[i] = chain
                taken.update(chain)
    for i, layer in enumerate(layers):
        if layer.type == "BatchNorm" and i not in taken:
            j = sole_consumer(i)
            if j is not None and layers[j].type == "Scale" and j not in taken \
                    and per_channel_scale(layers[j], shapes[layers[j].bottom[0]]) \
                    and layers[j].name in arrays:
                merged[i] = j
                taken.add(j)
    return folds, merged, taken


def build_model(inet, arrays, shapes, pattern_bits=2, bq=False, source="", extra_outputs=()):
    """The onnx ModelProto of an InferenceNet with its {layer: [arrays]} and
    Caffe's blob shapes ({blob: shape} at batch 1). `extra_outputs` names
    blobs to output too (their last version, as pycaffe's net.blobs holds)."""
    if pattern_bits not in PATTERN_BITS:
        raise io.UserError("--pattern-bits", f"{pattern_bits} is not one of 2, 4, 8, 32")
    layers = list(inet.net.layer)
    bad = [f"'{layer.name}' ({layer.type})" for layer in layers if layer.type not in SUPPORTED]
    if bad:
        raise io.UserError(source, f"unsupported layer {bad[0]}"
                           + (f" and {len(bad) - 1} more" if len(bad) > 1 else "")
                           + f"; the exporter handles {', '.join(SUPPORTED)}")
    try:
        walk = _Walk(layers)
    except io.UserError as e:
        raise io.UserError(source, e.problem) from None
    folds, merged, taken = _plan_folds(layers, walk, arrays, shapes)
    b = Builder(pattern_bits, bq)
    b.used.update(walk.name(bl, v) for outs in walk.outs for bl, v in outs)
    value = {}
    graph_inputs = []
    for i, layer in enumerate(layers):
        outs = [walk.name(bl, v) for bl, v in walk.outs[i]]
        ins = [value[key] for key in walk.ins[i]]
        if layer.type == "Input":
            for key, name in zip(walk.outs[i], outs):
                value[key] = name
                dims = ["N"] + list(shapes[key[0]][1:])
                graph_inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT,
                                                                  dims))
            continue
        if i in taken:   # folded or merged: its output is the value it was folded into
            continue
        if layer.type in ALIAS_TYPES:
            for key in walk.outs[i]:
                value[key] = ins[0]
            continue
        if layer.type in WEIGHT_TYPES or layer.type in ("BatchNorm", "Scale"):
            if layer.name not in arrays:
                raise io.UserError(source, f"layer '{layer.name}' ({layer.type}) has no "
                                           "weights in the model")
        chain = folds.get(i, [])
        end = chain[-1] if chain else (merged.get(i) if i in merged else i)
        out_key = walk.outs[end][0]
        out = walk.name(*out_key)
        shp = [shapes[bl] for bl, _ in walk.ins[i]] + [shapes[bl] for bl, _ in walk.outs[i]]
        try:
            if layer.type in WEIGHT_TYPES:
                fold = Fold([layers[j] for j in chain], arrays)
                CONVERTERS[layer.type](b, layer, ins, out, shp, arrays[layer.name], fold)
            elif layer.type == "BatchNorm":
                sl = layers[merged[i]] if i in merged else None
                batch_norm(b, layer, ins, out, shp, arrays[layer.name], sl,
                           arrays.get(sl.name) if sl is not None else None)
            else:
                CONVERTERS[layer.type](b, layer, ins, out, shp, arrays.get(layer.name))
        except Refused as e:
            raise io.UserError(source, f"layer '{layer.name}' ({layer.type}): {e}") from None
        for j in [i] + chain + ([merged[i]] if i in merged else []):
            for key in walk.outs[j]:
                value[key] = out
    outputs = []
    extra = [(bl, walk.last[bl]) for bl in extra_outputs if bl in walk.last]
    for key in walk.outputs + [k for k in extra if k not in walk.outputs]:
        name = walk.name(*key)
        if value[key] != name:
            b.node("Identity", [value[key]], name, name)
        outputs.append(helper.make_tensor_value_info(
            name, TensorProto.FLOAT, ["N"] + list(shapes[key[0]][1:])))
    opset, ir = OPSET[pattern_bits]
    graph = helper.make_graph(b.nodes, inet.net.name or "caffe_net", graph_inputs, outputs,
                              b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=ir, producer_name="sepnets.deploy")
    meta = {"sepnets.pattern_bits": str(pattern_bits), "sepnets.bq": str(int(bq)),
            "sepnets.stored": json.dumps(b.stored)}
    if inet.transform or inet.data_source:
        meta["sepnets.preprocess"] = json.dumps({"transform": inet.transform,
                                                 "data_source": inet.data_source})
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model, full_check=True)
    return model


def export(net_path, model_path, pattern_bits=2, bq=False, input_shape=None):
    """Read, check and convert: the ModelProto of a prototxt + caffemodel."""
    inet, cnet, arrays = netdef.load(net_path, model_path, input_shape)
    return build_model(inet, arrays, netdef.blob_shapes(cnet), pattern_bits, bq, net_path)


def stored_bytes(model):
    """{layer: (kind, bytes of its stored weight initializers)} from the metadata."""
    stored = {}
    for p in model.metadata_props:
        if p.key == "sepnets.stored":
            stored = json.loads(p.value)
    inits = {t.name: t for t in model.graph.initializer}
    return {layer: (kind, sum(inits[n].ByteSize() for n in names))
            for layer, (kind, names) in stored.items()}


# ------------------------------------------------------------------ command

def command(a):
    """What ``tools/export_onnx.py`` does with its parsed command line."""
    if a.size_report:
        from .size_report import write_report
        write_report(a.size_report, progress=lambda m: print(m, flush=True))
        return 0
    if not (a.prototxt and a.caffemodel and a.output):
        raise io.UserError(None, "PROTOTXT CAFFEMODEL -o OUTPUT are required (or --size-report)")
    for path, what in ((a.prototxt, "prototxt"), (a.caffemodel, "caffemodel")):
        io.require_file(path, what)
    io.refuse_overwrite(a.output, a.prototxt, a.caffemodel)
    if os.path.isdir(a.output):
        raise io.UserError(a.output, "is a folder; give the .onnx file's path")
    shape = io.input_shape(a.input_shape) if a.input_shape else None
    model = export(a.prototxt, a.caffemodel, a.pattern_bits, a.bq, shape)
    data = model.SerializeToString()
    io.write_bytes_atomic(a.output, data)
    patterns = sum(1 for kind, _ in stored_bytes(model).values() if kind == "pattern")
    print(f"wrote {a.output}: {len(data):,} bytes, {len(model.graph.node)} nodes, "
          f"{patterns} pattern layers as "
          f"{'fp32' if a.pattern_bits == 32 else f'INT{a.pattern_bits}'}, opset "
          f"{model.opset_import[0].version}")
    return 0
