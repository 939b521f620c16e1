"""Training-step speed on a GPU, side by side: the project's Caffe with cuDNN
(engine DEFAULT in GPU mode), the same binary on Caffe 1.0's own GPU code
(engine CAFFE on every layer that has a cuDNN one: im2col + cuBLAS, image by
image), and PyTorch with cuDNN on the same graph (tools/bench_train.py --gpu,
and the GPU check, scripts/device_check.sh).

Why `caffe train` on a net fed by DummyData, not `caffe time`: `caffe time`
synchronises the GPU after every layer to time it, which on small CIFAR
layers costs as much as the layers themselves; a training step is what the
GPU pays in `caffe train`. DummyData with constant fillers costs nothing per
step, so the step is forward + backward + the SGD update, timed by Caffe's own
display line (iterations per second over `display` iterations, measured with
CUDA events). The PyTorch side (torch_graph.py) times forward + backward +
SGD with momentum, cudnn.benchmark on and TF32 off (Caffe computes in FP32).

`prepare` needs pycaffe (the graph's parameter shapes) and runs here; `run`
needs only the standard library, the caffe tool and a Python with CUDA torch,
so it runs on a GPU host that has neither pycaffe nor numpy.
"""
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

from ..caffeio.env import caffe_tool
from ..errors import UserError

#: The nets of the GPU comparison (keys of bench_train.NETS): the CIFAR ones.
GPU_NETS = ("resnet20", "resnet20-pattern")
MANIFEST = "manifest.json"
DEFAULT_OUT = "logs/benchmarks/bench_train_gpu.md"
_DISPLAY = re.compile(r"\] Iteration (\d+) \(([0-9.eE+-]+) iter/s, ([0-9.eE+-]+)s/(\d+) iters\)")
# Layers with a cuDNN engine in Caffe 1.0, and the parameter holding it.
_CUDNN_ENGINES = {"ReLU": "relu_param", "Sigmoid": "sigmoid_param", "TanH": "tanh_param",
                  "Pooling": "pooling_param", "Softmax": "softmax_param",
                  "SoftmaxWithLoss": "softmax_param", "LRN": "lrn_param"}


def step_net(net, batch, stock):
    """The training net of one step: bench_train's training variant with its
    Input layers turned into constant DummyData (no data loading, no RNG) and,
    for `stock`, engine CAFFE on every layer that has a cuDNN engine too."""
    from .bench_train import training_variant
    out = training_variant(net, batch, stock)
    for layer in out.layer:
        if layer.type == "Input":
            shapes = list(layer.input_param.shape)
            layer.type = "DummyData"
            layer.ClearField("input_param")
            for shape in shapes:
                layer.dummy_data_param.shape.add().CopyFrom(shape)
                filler = layer.dummy_data_param.data_filler.add()
                filler.type = "constant"
                filler.value = 0.0 if layer.name == "label" else 0.1
        elif stock and layer.type in _CUDNN_ENGINES:
            field = getattr(layer, _CUDNN_ENGINES[layer.type])
            field.engine = type(field).CAFFE
    return out


def prepare(out, keys=GPU_NETS, batch=None):
    """Write, under `out`, for each net: the two step nets (ours, stock), the
    graph for PyTorch, and manifest.json listing them. Returns the manifest."""
    from google.protobuf import text_format
    from .. import REPO_ROOT
    from ..caffeio.proto import read_prototxt
    from .bench_train import NETS, torch_spec
    os.makedirs(out, exist_ok=True)
    nets = {n[0]: n for n in NETS}
    unknown = [k for k in keys if k not in nets]
    if unknown:
        raise UserError(None, f"unknown net(s) {', '.join(unknown)}; known: {', '.join(nets)}")
    manifest = []
    for key in keys:
        _, label, path, default_batch = nets[key]
        b = batch or default_batch
        net = read_prototxt(os.path.join(REPO_ROOT, path))
        entry = {"key": key, "label": label, "model": path, "batch": b}
        for which in ("ours", "stock"):
            entry[which] = f"{key}.{which}.prototxt"
            with open(os.path.join(out, entry[which]), "w") as f:
                f.write(text_format.MessageToString(step_net(net, b, which == "stock")))
        # The graph PyTorch rebuilds: the net with its Input layers (shapes).
        from .bench_train import training_variant
        with tempfile.TemporaryDirectory() as tmp:
            p = os.path.join(tmp, "net.prototxt")
            with open(p, "w") as f:
                f.write(text_format.MessageToString(training_variant(net, b, False)))
            spec = torch_spec(p)
        entry["torch"] = f"{key}.torch.json"
        with open(os.path.join(out, entry["torch"]), "w") as f:
            json.dump(spec, f)
        manifest.append(entry)
    with open(os.path.join(out, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=1)
    return manifest


def solver_text(net_path, iterations, repeats, gpu):
    """A solver that runs `repeats` + 1 display intervals of `iterations`
    steps (the first is the warm-up) and writes nothing. Caffe displays at
    iteration 0, `iterations`, ... below max_iter."""
    return (f'net: "{net_path}"\nbase_lr: 0.01\nlr_policy: "fixed"\nmomentum: 0.9\n'
            f"weight_decay: 0.0005\nmax_iter: {iterations * (repeats + 1) + 1}\n"
            f"display: {iterations}\nsnapshot: 0\nsnapshot_after_train: false\n"
            f"random_seed: 1\nsolver_mode: GPU\ndevice_id: {gpu}\n")


def step_times(log_text, skip=1):
    """ms per step of each display interval of a caffe train log, after the
    first `skip` intervals (warm-up)."""
    times, last = [], None
    for m in _DISPLAY.finditer(log_text):
        it, lapse = int(m.group(1)), float(m.group(3))
        if last is not None and it > last:
            times.append(1000.0 * lapse / (it - last))
        last = it
    return times[skip:]


def caffe_steps(net_path, gpu, iterations, repeats):
    """ms per training step of `caffe train -gpu` on the step net, one figure
    per repeat."""
    with tempfile.TemporaryDirectory(prefix="bench_gpu_") as tmp:
        solver = os.path.join(tmp, "solver.prototxt")
        with open(solver, "w") as f:
            f.write(solver_text(os.path.abspath(net_path), iterations, repeats, gpu))
        proc = subprocess.run([caffe_tool("caffe"), "train", "-solver", solver, "-gpu", str(gpu)],
                              capture_output=True, text=True,
                              env=dict(os.environ, GLOG_logtostderr="1"))
    if proc.returncode != 0:
        fatal = [l.split("] ", 1)[-1] for l in proc.stderr.splitlines() if l.startswith("F")]
        reason = fatal[-1] if fatal else (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(net_path, f"caffe train -gpu {gpu} failed: {reason}")
    times = step_times(proc.stderr)
    if len(times) < repeats:
        raise UserError(net_path, f"caffe train printed {len(times)} timed intervals, "
                                  f"expected {repeats}")
    return times[:repeats]


def torch_steps(spec_path, gpu, iterations, repeats, python=None):
    """(ms per training step per repeat, torch version, device name) of the
    graph in PyTorch on cuda:`gpu` (torch_graph.py in its own process)."""
    with open(spec_path) as f:
        spec = json.load(f)
    from .torch_env import run_torch_graph
    out = run_torch_graph(python or sys.executable,
                          {"spec": spec, "iterations": iterations, "repeats": repeats,
                           "threads": 1, "device": f"cuda:{gpu}", "train": True},
                          f" on cuda:{gpu}")
    return out["ms"], out["torch"], out.get("device", "")


def run(folder, gpu=0, iterations=50, repeats=3, python=None, say=None):
    """Time every net of a prepared folder: ours, stock, PyTorch."""
    say = say or (lambda msg: print(msg, file=sys.stderr, flush=True))
    path = os.path.join(folder, MANIFEST)
    if not os.path.isfile(path):
        raise UserError(path, "missing: prepare the benchmark's inputs first")
    with open(path) as f:
        manifest = json.load(f)
    results = []
    for e in manifest:
        r = dict(e, times={})
        for which in ("ours", "stock"):
            r["times"][which] = caffe_steps(os.path.join(folder, e[which]), gpu, iterations,
                                            repeats)
        r["times"]["torch"], r["torch_version"], r["device"] = torch_steps(
            os.path.join(folder, e["torch"]), gpu, iterations, repeats, python)
        say(f"  {e['label']} (batch {e['batch']}): ours {statistics.median(r['times']['ours']):.2f}"
            f" ms, stock {statistics.median(r['times']['stock']):.2f} ms, PyTorch "
            f"{statistics.median(r['times']['torch']):.2f} ms per step")
        results.append(r)
    return results


def format_report(results, iterations, repeats, command):
    """The Markdown report: one row per net, ratios of the medians."""
    first = results[0] if results else {}
    lines = [
        f"# Training-step speed on the GPU ({first.get('device') or 'GPU'}): Caffe with cuDNN, "
        "Caffe 1.0's GPU code, PyTorch", "",
        f"Made by `{command}`. One training step (forward, backward, SGD update with "
        "momentum) at the batch shown; min / median of "
        f"{repeats} timed runs of {iterations} steps each, after one warm-up run. 'ours': "
        "`caffe train -gpu` on the net with engine DEFAULT (cuDNN convolutions, the "
        "pattern layer's cuDNN engine, cuDNN ReLU/pooling/softmax); 'Caffe 1.0': the same "
        "binary with engine CAFFE on those layers (im2col + cuBLAS image by image, no "
        "cuDNN); both fed by constant DummyData and timed by Caffe's display line. "
        f"PyTorch {first.get('torch_version') or '-'} runs the same graph (torch_graph.py) "
        "with SGD, cudnn.benchmark on, TF32 off (FP32 like Caffe).", "",
        "| net | batch | ours (ms) | Caffe 1.0 (ms) | PyTorch (ms) | ours / PyTorch "
        "| Caffe 1.0 / PyTorch | ours vs Caffe 1.0 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        o, s, t = (r["times"][k] for k in ("ours", "stock", "torch"))
        mo, ms_, mt = (statistics.median(v) for v in (o, s, t))
        lines.append(f"| {r['label']} | {r['batch']} | {min(o):.2f} / {mo:.2f} | "
                     f"{min(s):.2f} / {ms_:.2f} | {min(t):.2f} / {mt:.2f} | **{mo / mt:.2f}x** | "
                     f"{ms_ / mt:.2f}x | {ms_ / mo:.2f}x faster |")
    return "\n".join(lines) + "\n"
