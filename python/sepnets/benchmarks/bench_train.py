"""Training-step speed of the project's Caffe against stock Caffe's engines and
PyTorch on the CPU, measured side by side in one run (tools/bench_train.py).

Why `caffe time` on a deploy net with its BatchNorm layers switched to training
mode: the deploy files set use_global_stats (inference BatchNorm), which is not
what a training step pays.  `caffe time` runs every layer's forward and
backward, and prints Caffe's own per-layer timings, which give the per-type
breakdown.  The PyTorch side rebuilds the same graph (torch_graph.py) in its
own environment and process; runs alternate (ours, stock, PyTorch, ours, ...)
so that a slow spell of the machine hits all three alike, and each reports
the min and median of its repeats.
"""
import os
import statistics
import sys
import tempfile

from .. import REPO_ROOT
from ..caffeio.env import import_caffe
from ..caffeio.proto import caffe_pb2, read_prototxt
from ..errors import UserError
from .caffe_time import caffe_time, set_batch
from .torch_env import bench_python, run_torch_graph

# (key, label, deploy prototxt, batch) of the nets the issue names.
NETS = (
    ("resnet20", "ResNet-20", "prototxt/cifar10-resnet20/deploy.prototxt", 128),
    ("resnet20-pattern", "ResNet-20 pattern (mean)",
     "prototxt/cifar10-resnet20-pattern-mean/deploy.prototxt", 128),
    ("sepnet-r", "SEP-Net-R", "prototxt/sepnet-r/deploy.prototxt", 16),
    ("sepnet-b", "SEP-Net-B", "prototxt/sepnet-b/deploy.prototxt", 16),
    ("mobilenet", "MobileNet 0.5", "prototxt/mobilenet-0.5/deploy.prototxt", 16),
    ("squeezenet", "SqueezeNet", "prototxt/squeezenet/deploy.prototxt", 16),
    ("googlenet", "GoogLeNet", "prototxt/googlenet/deploy.prototxt", 16),
)
CONV_TYPES = ("Convolution", "BinaryPatternConvolution")
DEFAULT_OUT = "logs/benchmarks/bench_train.md"
PARITY_OUT = "logs/benchmarks/engine_parity.md"
PARITY_NET = "prototxt/cifar10-resnet20/train_val.prototxt"
PARITY_MODEL = "models/cifar10-resnet20-12000/cifar10-resnet20-12000.caffemodel"


def training_variant(net, batch, stock):
    """A copy of `net` at `batch` with training-mode BatchNorm; `stock` sets
    engine CAFFE on every layer that has a project engine (Caffe 1.0's code)."""
    pb2 = caffe_pb2()
    out = pb2.NetParameter()
    out.CopyFrom(net)
    if not set_batch(out, batch):
        raise UserError(None, "no Input layer to set the batch size of (use a deploy prototxt)")
    _add_loss(out, batch)
    for layer in out.layer:
        if layer.type == "BatchNorm":
            layer.batch_norm_param.ClearField("use_global_stats")
            if stock:
                layer.batch_norm_param.engine = pb2.BatchNormParameter.CAFFE
        elif layer.type == "Scale" and stock:
            layer.scale_param.engine = pb2.ScaleParameter.CAFFE
        elif layer.type in CONV_TYPES and stock:
            layer.convolution_param.engine = pb2.ConvolutionParameter.CAFFE
    return out


def _add_loss(net, batch):
    """Replace the final Softmax by SoftmaxWithLoss on a label Input, as in
    training: without a loss, Caffe's net marks no blob as needing backward,
    so layers that honour propagate_down would skip their input gradients and
    the step would be timed without them."""
    softmax = [l for l in net.layer if l.type == "Softmax"]
    if len(softmax) != 1:
        raise UserError(None, "the benchmark needs a deploy net ending in one Softmax layer")
    layer = softmax[0]
    layer.type = "SoftmaxWithLoss"
    layer.ClearField("softmax_param")
    layer.bottom.append("label")
    del layer.top[:]
    layer.top.append("loss")
    label = caffe_pb2().LayerParameter(name="label", type="Input", top=["label"])
    label.input_param.shape.add().dim.append(batch)
    net.layer.insert(0, label)


def torch_spec(path):
    """The graph of the net at `path` as JSON for torch_graph.py, with the
    parameter shapes read from the instantiated pycaffe net."""
    caffe = import_caffe()
    pb2 = caffe_pb2()
    proto = read_prototxt(path)
    net = caffe.Net(path, caffe.TRAIN)
    inputs = [l for l in proto.layer if l.type == "Input" and l.name != "label"]
    if len(inputs) != 1 or len(inputs[0].top) != 1:
        raise UserError(path, "the benchmark needs exactly one Input layer with one top")
    spec = {"input": {"name": inputs[0].top[0],
                      "shape": list(net.blobs[inputs[0].top[0]].data.shape)},
            "layers": []}
    consumed = set()
    for layer in proto.layer:
        if layer.type == "Input":
            continue
        entry = {"name": layer.name, "type": layer.type, "bottom": list(layer.bottom),
                 "top": list(layer.top)}
        consumed.update(layer.bottom)
        blobs = net.params[layer.name] if layer.name in net.params else []
        if layer.type in CONV_TYPES:
            cp = layer.convolution_param
            entry.update(_conv_geometry(cp))
            entry["params"] = {"weight": list(blobs[0].data.shape)}
            if cp.bias_term:
                entry["params"]["bias"] = list(blobs[1].data.shape)
        elif layer.type == "BatchNorm":
            entry.update(channels=int(blobs[0].data.shape[0]), eps=layer.batch_norm_param.eps)
        elif layer.type == "Scale":
            entry["params"] = {"scale": list(blobs[0].data.shape)}
            if layer.scale_param.bias_term:
                entry["params"]["bias"] = list(blobs[1].data.shape)
        elif layer.type == "InnerProduct":
            entry["params"] = {"weight": list(blobs[0].data.shape)}
            if layer.inner_product_param.bias_term:
                entry["params"]["bias"] = list(blobs[1].data.shape)
        elif layer.type == "Pooling":
            pp = layer.pooling_param
            entry.update(method=pb2.PoolingParameter.PoolMethod.Name(pp.pool),
                         kernel=pp.kernel_size or pp.kernel_h, stride=pp.stride or pp.stride_h,
                         pad=pp.pad or pp.pad_h, **{"global": pp.global_pooling})
        elif layer.type == "Eltwise":
            ep = layer.eltwise_param
            entry.update(operation=pb2.EltwiseParameter.EltwiseOp.Name(ep.operation),
                         coeff=list(ep.coeff))
        elif layer.type == "Concat":
            entry["axis"] = layer.concat_param.axis
        elif layer.type == "LRN":
            lp = layer.lrn_param
            entry.update(size=lp.local_size, alpha=lp.alpha, beta=lp.beta, k=lp.k)
        elif layer.type == "SoftmaxWithLoss":
            entry["bottom"] = entry["bottom"][:1]  # labels: zeros, as Caffe's Input holds
        elif layer.type == "Dropout":
            entry["ratio"] = layer.dropout_param.dropout_ratio
        spec["layers"].append(entry)
    tops = [t for l in proto.layer for t in l.top]
    spec["outputs"] = sorted({t for t in tops if t not in consumed})
    return spec


def _conv_geometry(cp):
    def pair(values, h, w, default):
        if h or w:
            return [h, w]
        v = list(values) or [default]
        return [v[0], v[-1]]
    return {"stride": pair(cp.stride, cp.stride_h, cp.stride_w, 1),
            "pad": pair(cp.pad, cp.pad_h, cp.pad_w, 0),
            "dilation": pair(cp.dilation, 0, 0, 1), "group": cp.group}


def torch_time(spec, iterations, threads):
    """ms per step (one repeat) and torch's version, from the bench env."""
    out = run_torch_graph(bench_python(), {"spec": spec, "iterations": iterations,
                                           "repeats": 1, "threads": threads}, "",
                          threads=threads)
    return out["ms"][0], out["torch"]


def bench_net(key, label, path, batch, iterations, repeats, threads, say, with_torch=True):
    """Alternating repeats of ours / stock / PyTorch on one net."""
    from google.protobuf import text_format
    net = read_prototxt(path)
    types = {l.name: l.type for l in training_variant(net, batch, False).layer}
    times = {"ours": [], "stock": [], "torch": []}
    layer_sums = {"ours": {}, "stock": {}}
    rss = {}
    torch_version = None
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        files = {}
        for which in ("ours", "stock"):
            files[which] = os.path.join(tmp, f"{which}.prototxt")
            with open(files[which], "w") as f:
                f.write(text_format.MessageToString(
                    training_variant(net, batch, which == "stock")))
        spec = torch_spec(files["ours"]) if with_torch else None
        for r in range(repeats):
            for which in ("ours", "stock"):
                layers, totals, peak = caffe_time(files[which], iterations, threads)
                times[which].append(totals["Forward-Backward"])
                rss[which] = max(rss.get(which, 0), peak)
                for name, (fwd, bwd) in layers.items():
                    t = types.get(name, "Split")  # the splits Caffe inserts
                    layer_sums[which].setdefault(t, []).append(fwd + bwd)
            if with_torch:
                ms, torch_version = torch_time(spec, iterations, threads)
                times["torch"].append(ms)
            say(f"  {label}: repeat {r + 1}/{repeats}: ours {times['ours'][-1]:.1f} ms, "
                f"stock {times['stock'][-1]:.1f} ms"
                + (f", PyTorch {times['torch'][-1]:.1f} ms" if with_torch else ""))
    breakdown = {which: {t: sum(v) / repeats for t, v in sums.items()}
                 for which, sums in layer_sums.items()}
    return {"key": key, "label": label, "model": os.path.relpath(path, REPO_ROOT),
            "batch": batch, "times": times, "breakdown": breakdown, "rss_mib": rss,
            "torch_version": torch_version}


def summary(values):
    return min(values), statistics.median(values)


def format_report(results, iterations, repeats, threads, command):
    """The Markdown report: the ratio table, then the per-type breakdown."""
    torch_version = next((r["torch_version"] for r in results if r["torch_version"]), None)
    lines = [
        "# Training-step speed on the CPU: the project's Caffe, stock Caffe, PyTorch", "",
        f"Made by `{command}`: {threads} thread(s) for every side, {iterations} "
        f"iterations per run, {repeats} alternating repeats (ours, stock, PyTorch); "
        "min / median of the repeats' ms per forward+backward step. `caffe time` on each "
        "deploy net with its BatchNorm layers in training mode; 'stock' is the same "
        "binary with `engine: CAFFE` on every Convolution, BinaryPatternConvolution, "
        "BatchNorm and Scale layer (Caffe 1.0's own code); PyTorch "
        f"{torch_version or '-'} runs the same graph (tools/bench_train.py's torch "
        "builder). Peak memory is each `caffe time` process's maximum resident set.", "",
        "| net | batch | ours (ms) | stock Caffe (ms) | PyTorch (ms) | ours / PyTorch "
        "| stock / PyTorch | ours vs stock | peak MiB ours / stock |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        o, s = (summary(r["times"][k]) for k in ("ours", "stock"))
        if r["times"]["torch"]:
            t = summary(r["times"]["torch"])
            torch_cols = (f"{t[0]:.1f} / {t[1]:.1f} | **{o[1] / t[1]:.2f}x** "
                          f"| {s[1] / t[1]:.2f}x")
        else:
            torch_cols = "- | - | -"
        lines.append(
            f"| {r['label']} | {r['batch']} | {o[0]:.1f} / {o[1]:.1f} | {s[0]:.1f} / {s[1]:.1f} "
            f"| {torch_cols} | {s[1] / o[1]:.2f}x faster | {r['rss_mib']['ours']:.0f} / "
            f"{r['rss_mib']['stock']:.0f} |")
    lines += ["", "Ratios use the medians. Where the time goes (`caffe time`'s per-layer "
              "forward+backward summed by layer type, mean over the repeats, % of the "
              "layers' sum):", ""]
    for r in results:
        lines.append(f"- **{r['label']}**: " + "; ".join(
            f"{which}: " + ", ".join(
                f"{t} {100 * ms / sum(bd.values()):.0f}%"
                for t, ms in sorted(bd.items(), key=lambda kv: -kv[1]) if ms > 0.005 *
                sum(bd.values()))
            for which, bd in r["breakdown"].items()))
    return "\n".join(lines) + "\n"


def command(a, cmdline):
    """What ``tools/bench_train.py`` does with its parsed command line."""
    from . import engine_parity
    from ..fileio import write_text_atomic
    for name, value, top in (("--threads", a.threads, 64), ("--iterations", a.iterations, 1000),
                             ("--repeats", a.repeats, 100), ("--batch", a.batch, 4096),
                             ("--parity-iters", a.parity_iters, 100000)):
        if value is not None and not 1 <= value <= top:
            raise UserError(name, f"must be between 1 and {top} (got {value})")
    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    if getattr(a, "gpu", None) is not None:
        return _command_gpu(a, cmdline, say)
    if a.iterations is None:
        a.iterations = 3
    if a.parity:
        model = a.parity_model if os.path.isabs(a.parity_model) else \
            os.path.join(REPO_ROOT, a.parity_model)
        r = engine_parity.compare(os.path.join(REPO_ROOT, PARITY_NET), model,
                                  os.path.abspath(a.data), a.parity_iters, a.threads, say)
        report, out = engine_parity.format_report(r, cmdline), \
            PARITY_OUT if a.out == DEFAULT_OUT else a.out
    else:
        if not a.no_torch:
            bench_python(say)
        results = []
        for key, label, path, batch in NETS:
            if key in a.nets:
                say(f"[bench] {label}: {path}")
                results.append(bench_net(key, label, os.path.join(REPO_ROOT, path),
                                         a.batch or batch, a.iterations, a.repeats, a.threads,
                                         say, with_torch=not a.no_torch))
        report, out = format_report(results, a.iterations, a.repeats, a.threads, cmdline), a.out
    print(report, end="")
    if out != "-":
        write_text_atomic(out if os.path.isabs(out) else os.path.join(REPO_ROOT, out), report)
    return 0


def _command_gpu(a, cmdline, say):
    """--gpu N: the training step on that GPU, Caffe with cuDNN against Caffe
    1.0's GPU code and PyTorch with cuDNN (bench_gpu.py)."""
    from . import bench_gpu
    from ..fileio import write_text_atomic
    if not 0 <= a.gpu <= 63:
        raise UserError("--gpu", f"must be a GPU id between 0 and 63 (got {a.gpu})")
    if a.parity or a.no_torch:
        raise UserError("--gpu", "goes with neither --parity nor --no-torch")
    keys = list(bench_gpu.GPU_NETS) if set(a.nets) == {n[0] for n in NETS} else a.nets
    iterations = a.iterations or 50
    python = os.environ.get("SEPNETS_BENCH_PYTHON") or "python3"
    with tempfile.TemporaryDirectory(prefix="bench_gpu_") as tmp:
        bench_gpu.prepare(tmp, keys, a.batch)
        results = bench_gpu.run(tmp, a.gpu, iterations, a.repeats, python, say)
    report = bench_gpu.format_report(results, iterations, a.repeats, cmdline)
    out = bench_gpu.DEFAULT_OUT if a.out == DEFAULT_OUT else a.out
    print(report, end="")
    if out != "-":
        write_text_atomic(out if os.path.isabs(out) else os.path.join(REPO_ROOT, out), report)
    return 0
