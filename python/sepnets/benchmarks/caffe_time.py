"""Running `caffe time` and reading what it prints: the one owner of both,
for every benchmark (bench_conv, bench_train).

`caffe time` runs each layer's forward and backward and prints Caffe's own
per-layer timings, so a benchmark measures what a training run pays (reorders,
scale computation, data layout) rather than a micro-benchmark's kernel.
"""
import os
import re
import subprocess
import tempfile

from ..caffeio.env import caffe_tool
from ..errors import UserError

_LAYER_TIME = re.compile(r"\]\s+(\S+)\s+(forward|backward): ([0-9.eE+-]+) ms\.")
_TOTAL = re.compile(r"Average (Forward pass|Backward pass|Forward-Backward): ([0-9.eE+-]+) ms\.")


def set_batch(net, batch):
    """Set the batch size of a deploy net's inputs: its Input layers, or the
    legacy header (`input:` with `input_shape` or `input_dim`); False if none."""
    found = False
    for layer in net.layer:
        if layer.type == "Input":
            for shape in layer.input_param.shape:
                shape.dim[0] = batch
                found = True
    for shape in net.input_shape:
        shape.dim[0] = batch
        found = True
    if net.input and not net.input_shape and len(net.input_dim) == 4 * len(net.input):
        for i in range(len(net.input)):
            net.input_dim[4 * i] = batch
            found = True
    return found


def caffe_time(model_path, iterations, threads=None, gpu=None):
    """One `caffe time` run: ({layer: (forward ms, backward ms)}, {total name:
    ms per iteration}, peak resident MiB of that process (wait4)).

    `threads` sets OpenMP's and OpenBLAS's threads for the run."""
    cmd = [caffe_tool("caffe"), "time", "-model", model_path, "-iterations", str(iterations)]
    if gpu is not None:
        cmd += ["-gpu", str(gpu)]
    env = dict(os.environ, GLOG_logtostderr="1", GLOG_minloglevel="0")
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read()
    if proc.returncode != 0:
        fatal = [l.split("] ", 1)[-1] for l in text.splitlines() if l.startswith("F")]
        reason = fatal[-1] if fatal else (text.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        raise UserError(model_path, f"caffe time failed: {reason}")
    layers, totals = {}, {}
    for line in text.splitlines():
        m = _LAYER_TIME.search(line)
        if m:
            fwd, bwd = layers.get(m.group(1), (0.0, 0.0))
            value = float(m.group(3))
            layers[m.group(1)] = (value, bwd) if m.group(2) == "forward" else (fwd, value)
            continue
        m = _TOTAL.search(line)
        if m:
            totals[m.group(1)] = float(m.group(2))
    if not layers or "Forward-Backward" not in totals:
        raise UserError(model_path, "caffe time printed no per-layer timings")
    return layers, totals, usage.ru_maxrss / 1024
