"""The PyTorch side of tools/bench_train.py: a Caffe graph, described as JSON
by the caffe side, rebuilt with torch ops and timed for forward + backward.

Run only inside the benchmark's own environment (.venv-bench), or a Python
with CUDA torch on a GPU host, as `python -m sepnets.benchmarks.torch_graph
SPEC.json`; it prints one JSON line of per-repeat milliseconds.  Nothing else
in the project imports torch.  The job may ask for a device ("cuda:0": cuDNN
with cudnn.benchmark, TF32 off, timed between synchronisations) and for whole
training steps ("train": forward, backward and SGD with momentum, as Caffe's
solver) instead of forward + backward.

The graph is written the way a PyTorch user writes it: BatchNorm in training
mode without affine (Caffe's BatchNorm) followed by a per-channel multiply-add
(Caffe's Scale), pattern convolutions as alpha * sign(W) with a
straight-through estimator, Caffe's ceil-rounded pooling.
"""
import json
import sys
import time

import torch
import torch.nn.functional as F


def _pattern_weight(w):
    """alpha_c * sign(W_c), alpha_c = mean |W_c|, gradient straight through."""
    alpha = w.abs().mean(dim=(1, 2, 3), keepdim=True)
    sign = torch.where(w >= 0, torch.ones_like(w), -torch.ones_like(w))
    return alpha * (w + (sign - w).detach())


class Graph(torch.nn.Module):
    """Executes the spec's layers in order on a dict of named blobs."""

    def __init__(self, spec):
        super().__init__()
        self.spec = spec
        self.params = torch.nn.ParameterDict()
        self.buffers_ = {}
        shapes = {spec["input"]["name"]: spec["input"]["shape"]}
        for i, layer in enumerate(spec["layers"]):
            for name, shape in layer.get("params", {}).items():
                p = torch.nn.Parameter(torch.randn(*shape) * 0.05)
                self.params[f"l{i}_{name}"] = p
            if layer["type"] == "BatchNorm":
                c = layer["channels"]
                self.buffers_[i] = (torch.zeros(c), torch.ones(c))
        del shapes

    def p(self, i, name):
        return self.params[f"l{i}_{name}"]

    def forward(self, x):
        blobs = {self.spec["input"]["name"]: x}
        for i, layer in enumerate(self.spec["layers"]):
            ins = [blobs[b] for b in layer["bottom"]]
            outs = self.run_layer(i, layer, ins)
            for name, value in zip(layer["top"], outs):
                blobs[name] = value
        return [blobs[n] for n in self.spec["outputs"]]

    def run_layer(self, i, layer, ins):
        t = layer["type"]
        x = ins[0] if ins else None
        if t in ("Convolution", "BinaryPatternConvolution"):
            w = self.p(i, "weight")
            if t == "BinaryPatternConvolution":
                w = _pattern_weight(w)
            b = self.p(i, "bias") if "bias" in layer.get("params", {}) else None
            return [F.conv2d(x, w, b, stride=layer["stride"], padding=layer["pad"],
                             dilation=layer["dilation"], groups=layer["group"])]
        if t == "BatchNorm":
            mean, var = self.buffers_[i]
            return [F.batch_norm(x, mean, var, training=True, momentum=0.001,
                                 eps=layer["eps"])]
        if t == "Scale":
            shape = (1, -1) + (1,) * (x.dim() - 2)
            y = x * self.p(i, "scale").view(shape)
            if "bias" in layer.get("params", {}):
                y = y + self.p(i, "bias").view(shape)
            return [y]
        if t == "ReLU":
            return [F.relu(x)]
        if t == "Pooling":
            if layer["global"]:
                k, s, pad = tuple(x.shape[2:]), 1, 0
            else:
                k, s, pad = layer["kernel"], layer["stride"], layer["pad"]
            if layer["method"] == "MAX":
                return [F.max_pool2d(x, k, s, pad, ceil_mode=True)]
            return [F.avg_pool2d(x, k, s, pad, ceil_mode=True, count_include_pad=True)]
        if t == "Eltwise":
            if layer["operation"] == "SUM":
                coeff = layer.get("coeff") or [1.0] * len(ins)
                y = ins[0] * coeff[0] if coeff[0] != 1 else ins[0]
                for c, v in zip(coeff[1:], ins[1:]):
                    y = y + (v * c if c != 1 else v)
                return [y]
            if layer["operation"] == "PROD":
                y = ins[0]
                for v in ins[1:]:
                    y = y * v
                return [y]
            y = ins[0]
            for v in ins[1:]:
                y = torch.maximum(y, v)
            return [y]
        if t == "InnerProduct":
            w = self.p(i, "weight")
            b = self.p(i, "bias") if "bias" in layer.get("params", {}) else None
            return [F.linear(x.flatten(1), w, b)]
        if t == "Concat":
            return [torch.cat(ins, dim=layer["axis"])]
        if t == "LRN":
            return [F.local_response_norm(x, layer["size"], layer["alpha"], layer["beta"],
                                          layer["k"])]
        if t == "Dropout":
            return [F.dropout(x, layer["ratio"], training=True)]
        if t == "SoftmaxWithLoss":
            return [F.cross_entropy(x.flatten(1), torch.zeros(x.shape[0], dtype=torch.long,
                                                              device=x.device))]
        if t == "Softmax":
            return [F.softmax(x, dim=1)]
        if t == "Split":
            return [x] * len(layer["top"])
        if t == "Flatten":
            return [x.flatten(1)]
        raise ValueError(f"layer {layer['name']}: type {t} not supported by the torch graph")


def time_graph(spec, iterations, repeats, threads, device="cpu", train=False):
    """Milliseconds per forward + backward (with `train`: + SGD update), one
    figure per repeat, on `device`."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    dev = torch.device(device)
    if dev.type == "cuda":
        # cuDNN picks its fastest algorithms, in FP32 like Caffe (no TF32).
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.cuda.set_device(dev)
    net = Graph(spec).to(dev)
    net.buffers_ = {i: tuple(b.to(dev) for b in bufs) for i, bufs in net.buffers_.items()}
    x = torch.randn(*spec["input"]["shape"], device=dev)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=0.0005) \
        if train else None
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    times = []

    def step():
        net.zero_grad(set_to_none=True)
        outs = net(x)
        sum(o.sum() for o in outs).backward()
        if opt is not None:
            opt.step()

    for _ in range(max(1, iterations if dev.type == "cuda" else 1)):
        step()  # warm-up: allocations, kernel choice (cuDNN's benchmark)
    sync()
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(iterations):
            step()
        sync()
        times.append((time.perf_counter() - start) * 1000 / iterations)
    return times


def main(argv):
    with open(argv[0]) as f:
        job = json.load(f)
    device = job.get("device", "cpu")
    times = time_graph(job["spec"], job["iterations"], job["repeats"], job["threads"],
                       device, job.get("train", False))
    name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") \
        else "cpu"
    print(json.dumps({"ms": times, "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "device": name,
                      "cudnn": torch.backends.cudnn.version() if device != "cpu" else None}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
