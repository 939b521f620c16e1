"""Speed of BinaryPatternConvolution against Caffe's stock Convolution.

Runs the real `caffe time` on prototxts that differ only in the type (and
engine) of their k x k (k > 1) convolution layers, and sums Caffe's own
per-layer timings over exactly those layers.  Going through `caffe time` (not
a micro-benchmark) measures what a training run pays, reorders and scale
computation included.  The reference is Caffe's own im2col + GEMM
Convolution (engine CAFFE); the project's Caffe runs engine DEFAULT
convolutions on oneDNN, which is measured too.
"""
import os
import tempfile

from .. import REPO_ROOT
from ..caffeio.proto import caffe_pb2, read_prototxt
from ..errors import UserError
from ..fileio import refuse_overwrite, write_text_atomic
from .caffe_time import caffe_time, set_batch

DEFAULT_MODEL = "prototxt/cifar10-resnet20/deploy.prototxt"


# (label, layer type, convolution engine) of each timed variant; the first is
# the reference of the ratios.
VARIANTS = (
    ("Convolution, engine CAFFE (stock Caffe)", "Convolution", "CAFFE"),
    ("BinaryPatternConvolution, engine CAFFE", "BinaryPatternConvolution", "CAFFE"),
    ("Convolution, engine DEFAULT (oneDNN)", "Convolution", "DEFAULT"),
    ("BinaryPatternConvolution, engine DEFAULT (oneDNN)", "BinaryPatternConvolution", "DEFAULT"),
)


def kxk_layers(net):
    """Names of the Convolution layers with a kernel larger than 1 x 1."""
    names = []
    for layer in net.layer:
        cp = layer.convolution_param
        if layer.type == "Convolution" and \
                any(k > 1 for k in list(cp.kernel_size) + [cp.kernel_h, cp.kernel_w]):
            names.append(layer.name)
    return names


def variant(net, names, layer_type, engine, caffe_pb2):
    """A copy of `net` whose layers `names` have this type and engine."""
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    for layer in out.layer:
        if layer.name in names:
            layer.type = layer_type
            layer.convolution_param.engine = \
                caffe_pb2.ConvolutionParameter.Engine.Value(engine)
    return out


def compare(model, batch, iterations, repeats=1, gpu=None):
    """Time the stock and the pattern variant of `model`; returns a result dict."""
    from google.protobuf import text_format
    pb2 = caffe_pb2()
    net = read_prototxt(model)
    if not set_batch(net, batch):
        raise UserError(model, "no Input layer or input: header to set the batch size of "
                               "(use a deploy prototxt)")
    changed = kxk_layers(net)
    if not changed:
        raise UserError(model, "no k x k (k > 1) Convolution layer to compare")
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_conv_") as tmp:
        for i, (label, layer_type, engine) in enumerate(VARIANTS):
            path = os.path.join(tmp, f"variant{i}.prototxt")
            with open(path, "w") as f:
                f.write(text_format.MessageToString(
                    variant(net, changed, layer_type, engine, pb2)))
            best = None
            for _ in range(repeats):
                layers, totals, _ = caffe_time(path, iterations, gpu=gpu)
                fwd = sum(layers[n][0] for n in changed)
                bwd = sum(layers[n][1] for n in changed)
                if best is None or fwd + bwd < best["fwd"] + best["bwd"]:
                    best = dict(fwd=fwd, bwd=bwd,
                                net_total=totals.get("Forward-Backward", float("nan")))
            results[label] = best
    return dict(model=model, batch=batch, iterations=iterations, layers=changed, results=results,
                device="CPU" if gpu is None else f"GPU {gpu}")


def format_table(r):
    ref = r["results"][VARIANTS[0][0]]
    ref_fb = ref["fwd"] + ref["bwd"]
    rows = [
        "| k x k layers as | forward (ms) | backward (ms) | forward+backward (ms) "
        "| vs stock | whole net fwd+bwd (ms) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, _, _ in VARIANTS:
        v = r["results"][label]
        fb = v["fwd"] + v["bwd"]
        rows.append(f"| {label} | {v['fwd']:.1f} | {v['bwd']:.1f} | {fb:.1f} "
                    f"| {fb / ref_fb:.2f}x | {v['net_total']:.1f} |")
    head = (f"`caffe time` on `{r['model']}` ({r.get('device', 'CPU')}), batch {r['batch']}, "
            f"{r['iterations']} iterations; "
            f"times summed over the {len(r['layers'])} k x k convolution layers, "
            f"whose type and engine are the only difference between the runs.")
    if r.get("device", "CPU") != "CPU":
        head += (" On a GPU both engines run Caffe's im2col + cuBLAS code (oneDNN is the "
                 "CPU path), so the DEFAULT rows measure the same kernels again: their "
                 "spread is the run-to-run noise.")
    return head + "\n\n" + "\n".join(rows) + "\n"


def command(a):
    """What ``tools/bench_conv.py`` does with its parsed command line."""
    if a.batch < 1 or a.iterations < 1 or a.repeats < 1:
        raise UserError(None, "--batch, --iterations and --repeats must be >= 1")
    if a.gpu is not None and a.gpu < 0:
        raise UserError(None, "--gpu must be a device id >= 0")
    model = a.model if os.path.isabs(a.model) or os.path.exists(a.model) \
        else os.path.join(REPO_ROOT, a.model)
    if a.out:
        refuse_overwrite(a.out, model)
    result = compare(model, a.batch, a.iterations, a.repeats, a.gpu)
    result["model"] = os.path.relpath(model, REPO_ROOT) if model.startswith(REPO_ROOT) else model
    table = format_table(result)
    print(table, end="")
    if a.out:
        write_text_atomic(a.out, table)
    return 0
