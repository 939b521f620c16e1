"""Speed of BinaryPatternConvolution against Caffe's stock Convolution.

Runs the real `caffe time` on two prototxts that differ only in the type of
their k x k (k > 1) convolution layers, and sums Caffe's own per-layer timings
over exactly those layers.  Going through `caffe time` (not a micro-benchmark)
measures what a training run pays, reorders and scale computation included.
"""
import os
import re
import subprocess
import tempfile

from . import REPO_ROOT
from .caffe_env import caffe_tool, import_caffe
from .cli import parser
from .errors import UserError
from .fileio import require_file, write_text_atomic

DEFAULT_MODEL = "prototxt/cifar10-resnet20/deploy.prototxt"
_LAYER_TIME = re.compile(r"\]\s+(\S+)\s+(forward|backward): ([0-9.eE+-]+) ms\.")
_TOTAL = re.compile(r"Average (Forward pass|Backward pass|Forward-Backward): ([0-9.eE+-]+) ms\.")


def pattern_variant(net, caffe_pb2):
    """A copy of `net` whose k x k convolutions are BinaryPatternConvolution;
    returns it and the names of the changed layers."""
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    changed = []
    for layer in out.layer:
        if layer.type != "Convolution":
            continue
        cp = layer.convolution_param
        ks = list(cp.kernel_size) + [cp.kernel_h, cp.kernel_w]
        if any(k > 1 for k in ks):
            layer.type = "BinaryPatternConvolution"
            changed.append(layer.name)
    return out, changed


def set_batch(net, batch):
    """Set the batch size of the Input layers (deploy prototxts)."""
    found = False
    for layer in net.layer:
        if layer.type == "Input":
            for shape in layer.input_param.shape:
                shape.dim[0] = batch
                found = True
    return found


def caffe_time(model_path, iterations, env=None):
    """Run `caffe time` and return (per-layer {name: (fwd, bwd)}, totals)."""
    cmd = [caffe_tool("caffe"), "time", "-model", model_path, "-iterations", str(iterations)]
    run_env = dict(os.environ, GLOG_logtostderr="1", GLOG_minloglevel="0", **(env or {}))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=run_env)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise UserError(model_path, f"caffe time failed: {tail[0]}")
    layers, totals = {}, {}
    for line in proc.stderr.splitlines():
        m = _LAYER_TIME.search(line)
        if m:
            fwd, bwd = layers.get(m.group(1), (0.0, 0.0))
            value = float(m.group(3))
            layers[m.group(1)] = (value, bwd) if m.group(2) == "forward" else (fwd, value)
            continue
        m = _TOTAL.search(line)
        if m:
            totals[m.group(1)] = float(m.group(2))
    if not layers:
        raise UserError(model_path, "caffe time printed no per-layer timings")
    return layers, totals


def compare(model, batch, iterations, repeats=1):
    """Time the stock and the pattern variant of `model`; returns a result dict."""
    caffe = import_caffe()
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    require_file(model, "prototxt")
    net = caffe_pb2.NetParameter()
    with open(model) as f:
        try:
            text_format.Merge(f.read(), net)
        except text_format.ParseError as e:
            raise UserError(model, f"not a valid NetParameter prototxt ({e})") from e
    if not set_batch(net, batch):
        raise UserError(model, "no Input layer to set the batch size of (use a deploy prototxt)")
    pattern, changed = pattern_variant(net, caffe_pb2)
    if not changed:
        raise UserError(model, "no k x k (k > 1) Convolution layer to compare")
    del caffe
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_conv_") as tmp:
        for kind, proto in (("Convolution", net), ("BinaryPatternConvolution", pattern)):
            path = os.path.join(tmp, f"{kind}.prototxt")
            with open(path, "w") as f:
                f.write(text_format.MessageToString(proto))
            best = None
            for _ in range(repeats):
                layers, totals = caffe_time(path, iterations)
                fwd = sum(layers[n][0] for n in changed)
                bwd = sum(layers[n][1] for n in changed)
                if best is None or fwd + bwd < best["fwd"] + best["bwd"]:
                    best = dict(fwd=fwd, bwd=bwd, net_total=totals.get("Forward-Backward", float("nan")))
            results[kind] = best
    return dict(model=model, batch=batch, iterations=iterations, layers=changed, results=results)


def format_table(r):
    stock, pat = r["results"]["Convolution"], r["results"]["BinaryPatternConvolution"]

    def ratio(a, b):
        return f"{a / b:.2f}x" if b else "-"

    rows = [
        "| layer type | forward (ms) | backward (ms) | forward+backward (ms) | whole net fwd+bwd (ms) |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind, v in (("Convolution (stock)", stock), ("BinaryPatternConvolution", pat)):
        rows.append(f"| {kind} | {v['fwd']:.1f} | {v['bwd']:.1f} | {v['fwd'] + v['bwd']:.1f} "
                    f"| {v['net_total']:.1f} |")
    rows.append(f"| ratio (pattern / stock) | {ratio(pat['fwd'], stock['fwd'])} "
                f"| {ratio(pat['bwd'], stock['bwd'])} "
                f"| {ratio(pat['fwd'] + pat['bwd'], stock['fwd'] + stock['bwd'])} "
                f"| {ratio(pat['net_total'], stock['net_total'])} |")
    head = (f"`caffe time` on `{r['model']}`, batch {r['batch']}, {r['iterations']} iterations; "
            f"sums over the {len(r['layers'])} k x k convolution layers whose type differs.")
    return head + "\n\n" + "\n".join(rows) + "\n"


def main(argv=None):
    p = parser("bench_conv.py",
               "Time BinaryPatternConvolution against stock Convolution with `caffe time` "
               "on the same network shapes, and print a Markdown table.",
               ["python tools/bench_conv.py",
                "python tools/bench_conv.py --batch 128 --iterations 10 "
                "--out logs/benchmarks/bench_conv_resnet20.md",
                "python tools/bench_conv.py --model prototxt/googlenet/deploy.prototxt --batch 32"])
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"deploy prototxt with an Input layer (default: {DEFAULT_MODEL})")
    p.add_argument("--batch", type=int, default=128, help="batch size (default: 128)")
    p.add_argument("--iterations", type=int, default=5,
                   help="caffe time iterations per run (default: 5)")
    p.add_argument("--repeats", type=int, default=1,
                   help="runs per variant; the fastest is kept (default: 1)")
    p.add_argument("--out", help="also write the table to this Markdown file")
    a = p.parse_args(argv)
    if a.batch < 1 or a.iterations < 1 or a.repeats < 1:
        raise UserError(None, "--batch, --iterations and --repeats must be >= 1")
    model = a.model if os.path.isabs(a.model) or os.path.exists(a.model) \
        else os.path.join(REPO_ROOT, a.model)
    result = compare(model, a.batch, a.iterations, a.repeats)
    result["model"] = os.path.relpath(model, REPO_ROOT) if model.startswith(REPO_ROOT) else model
    table = format_table(result)
    print(table, end="")
    if a.out:
        write_text_atomic(a.out, table)
    return 0
