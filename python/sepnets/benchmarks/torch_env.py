"""Where the benchmark's PyTorch lives: its own environment, .venv-bench, so
that torch never becomes a dependency of the project's runtime.

The pinned version is a CPU build (a plain `pip install torch` would pull a
multi-GB CUDA build); SEPNETS_BENCH_PYTHON points at another interpreter that
has torch instead.
"""
import json
import os
import subprocess
import sys
import tempfile

from .. import REPO_ROOT
from ..errors import UserError

TORCH_REQUIREMENT = "torch==2.13.0"
BENCH_VENV = os.path.join(REPO_ROOT, ".venv-bench")


def _has_torch(python):
    return subprocess.run([python, "-c", "import torch"], capture_output=True).returncode == 0


def bench_python(say=None, install=True):
    """The interpreter to run the PyTorch side with; creates .venv-bench with
    the CPU build of torch the first time (saying so)."""
    say = say or (lambda msg: print(msg, file=sys.stderr, flush=True))
    env = os.environ.get("SEPNETS_BENCH_PYTHON")
    if env:
        if not _has_torch(env):
            raise UserError(env, "SEPNETS_BENCH_PYTHON cannot import torch")
        return env
    python = os.path.join(BENCH_VENV, "bin", "python")
    if os.access(python, os.X_OK) and _has_torch(python):
        return python
    if not install:
        raise UserError(BENCH_VENV, f"no PyTorch found; run tools/bench_train.py once "
                                    f"to install {TORCH_REQUIREMENT} there")
    say(f"[bench] PyTorch is a benchmark-only dependency: installing {TORCH_REQUIREMENT} "
        f"(CPU) into {os.path.relpath(BENCH_VENV, REPO_ROOT)}/ (once)")
    steps = ([sys.executable, "-m", "venv", BENCH_VENV],
             [python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
              TORCH_REQUIREMENT])
    for cmd in steps:
        if subprocess.run(cmd).returncode != 0:
            raise UserError(BENCH_VENV, "could not install PyTorch: " + " ".join(cmd))
    if not _has_torch(python):
        raise UserError(BENCH_VENV, "PyTorch installed but cannot be imported")
    return python


def run_torch_graph(python, job, what, threads=None):
    """Run ``sepnets.benchmarks.torch_graph`` on `job` (its JSON request:
    spec, iterations, repeats, threads, device ...) with `python` in a
    process of its own (torch is never imported here); return its JSON
    answer. `what` names the side in the one-line error."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(job, f)
        path = f.name
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO_ROOT, "python"))
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    try:
        proc = subprocess.run([python, "-m", "sepnets.benchmarks.torch_graph", path],
                              capture_output=True, text=True, env=env)
    finally:
        os.unlink(path)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise UserError("torch", f"the PyTorch side failed{what}: {last}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
