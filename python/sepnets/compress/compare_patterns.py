"""How far training moved the binary patterns of a net.

A pattern is sign(W) of a k x k filter, so what fine-tuning or STE training
changes in it is the set of flipped signs, not the size of the weights. The
STE gradient of a latent weight carries the factor alpha = mean|W| (about
0.04-0.14 in a trained ResNet-20), and a run at the full-precision solver's
learning rate can leave almost every sign where it was: this comparison is
how that shows, layer by layer, between any two models of the same net
(full precision against STE-trained, two snapshots of one run, ...).

Signs follow BinaryPatternConvolution's rule: w >= 0 is +1.

A comparison can be kept as a record (:func:`write_record`, JSON): the
runner keeps the one of step 4 (the full-precision model against the
STE-trained one) in the run's log folder as :data:`RECORD`, so that the
depth trend's table can say, per depth, how many pattern signs STE changed.
"""
import json
from dataclasses import asdict, dataclass

import numpy as np

from ..caffeio.blobs import BPC, CONV_TYPES, blob_array, kernel_dims, kernel_label
from ..caffeio.proto import read_caffemodel, read_prototxt, unique_layers
from ..errors import UserError
from ..fileio import write_text_atomic
from .binarize import mean_scale
from .sizes import is_baked_binary


@dataclass
class LayerDrift:
    name: str
    kernel: str
    weights: int
    flipped: int
    alpha_a: float          # mean over filters of alpha_c = mean|W_c|, model A
    alpha_b: float
    pattern: bool           # binary in A or B: a BinaryPatternConvolution, or baked +/-a_c

    @property
    def fraction(self):
        return self.flipped / self.weights


#: The record of step 4 in a run's log folder: full precision -> STE.
RECORD = "ste_sign_flips.json"


def _pattern_layers(model, path, net=None):
    """{name: kernel} of the k x k (k > 1) convolutions, from `net` (a
    prototxt's NetParameter) or else the definitions a Caffe-saved model
    carries."""
    defs = net if net is not None else model
    found = {}
    for layer in unique_layers(defs):
        if layer.type in CONV_TYPES:
            kernel = kernel_dims(layer)
            if not kernel:
                raise UserError(path, f"convolution '{layer.name}' declares no kernel size")
            if max(kernel) > 1:
                found[layer.name] = kernel
    if not found:
        raise UserError(path, "defines no k x k (k > 1) convolution: nothing to compare"
                              + ("" if net is not None else
                                 " (a model without layer definitions needs --net)"))
    return found


def _weights(model, path, names):
    out = {}
    for layer in model.layer:
        if layer.name in names and layer.blobs and layer.name not in out:
            try:
                out[layer.name] = blob_array(layer.blobs[0], layer.type or "Convolution", 0)
            except ValueError as e:
                raise UserError(path, f"corrupt: layer '{layer.name}' {e}") from None
    return out


def compare(model_a, model_b, net_path=None):
    """Per-layer sign flips between two caffemodels: [LayerDrift] in net order."""
    a, b = read_caffemodel(model_a), read_caffemodel(model_b)
    net = read_prototxt(net_path) if net_path else None
    kernels = _pattern_layers(a, net_path or model_a, net)
    wa, wb = _weights(a, model_a, kernels), _weights(b, model_b, kernels)
    bpc = {layer.name for m in (a, b, net) if m is not None for layer in m.layer
           if layer.type == BPC}
    rows = []
    for name, kernel in kernels.items():
        if name not in wa or name not in wb:
            continue
        x, y = wa[name], wb[name]
        if x.shape != y.shape:
            raise UserError(model_b, f"layer '{name}' has weights of shape {y.shape}, "
                                     f"{model_a} {x.shape}: not the same net")
        flipped = int(np.count_nonzero((x >= 0) != (y >= 0)))
        rows.append(LayerDrift(name, kernel_label(kernel), int(x.size), flipped,
                               float(mean_scale(x).mean()), float(mean_scale(y).mean()),
                               name in bpc or is_baked_binary(x) or is_baked_binary(y)))
    if not rows:
        raise UserError(model_b, f"shares no k x k convolution with weights with {model_a}")
    return rows


def binary_part(rows):
    """The rows of the binary layers; all rows when none is binary (two
    full-precision models)."""
    return [r for r in rows if r.pattern] or rows


def record(rows, model_a, model_b):
    """The comparison as a JSON-able dict: the models, the totals over the
    binary layers (what a pattern net stores as signs) and every layer."""
    part = binary_part(rows)
    n, f = sum(r.weights for r in part), sum(r.flipped for r in part)
    return {"model_a": model_a, "model_b": model_b, "binary_layers": len(part),
            "binary_weights": n, "binary_flipped": f, "binary_fraction": f / n,
            "layers": [dict(asdict(r), fraction=r.fraction) for r in rows]}


def write_record(path, rows, model_a, model_b):
    """Write :func:`record` to `path` (atomically) and return it."""
    rec = record(rows, model_a, model_b)
    write_text_atomic(path, json.dumps(rec, indent=1) + "\n")
    return rec


def read_record(path):
    """A record written by :func:`write_record`, or None when there is none;
    a UserError naming the file when it is not one."""
    try:
        with open(path) as f:
            rec = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise UserError(path, f"unreadable sign-flip record ({e})") from None
    keys = ("binary_weights", "binary_flipped", "binary_fraction")
    if not isinstance(rec, dict) or not all(isinstance(rec.get(k), (int, float)) for k in keys):
        raise UserError(path, "not a sign-flip record (needs " + ", ".join(keys) + ")")
    return rec


def format_table(rows, model_a, model_b):
    lines = [f"A: {model_a}", f"B: {model_b}", "",
             f"{'layer':24} {'kernel':>6} {'weights':>9} {'flipped':>9} {'%':>7} "
             f"{'alpha A':>8} {'alpha B':>8}  binary"]
    for r in rows:
        lines.append(f"{r.name:24} {r.kernel:>6} {r.weights:9d} {r.flipped:9d} "
                     f"{100 * r.fraction:7.2f} {r.alpha_a:8.4f} {r.alpha_b:8.4f}  "
                     f"{'yes' if r.pattern else '-'}")
    totals = [("total", rows)]
    if any(r.pattern for r in rows) and not all(r.pattern for r in rows):
        totals.append(("binary layers", binary_part(rows)))
    for label, part in totals:
        n = sum(r.weights for r in part)
        f = sum(r.flipped for r in part)
        lines.append(f"{label:24} {'':>6} {n:9d} {f:9d} {100 * f / n:7.2f}")
    return "\n".join(lines) + "\n"


def command(a):
    """What ``tools/compare_patterns.py`` does with its parsed command line."""
    rows = compare(a.model_a, a.model_b, a.net)
    if a.out:
        write_record(a.out, rows, a.model_a, a.model_b)
    if a.json:
        print(json.dumps(record(rows, a.model_a, a.model_b)["layers"], indent=1))
    else:
        print(format_table(rows, a.model_a, a.model_b), end="")
    return 0
