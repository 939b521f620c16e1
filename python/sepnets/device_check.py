"""Inputs for checking a CUDA build of the project's Caffe on a GPU host that
has neither this machine's data nor its packages (scripts/device_check.sh).

The check runs the real trained ResNet-20 through BinaryPatternConvolution on
the GPU and on the CPU of the same binary, so the inputs are a small spread
subset of the real CIFAR-10 LMDBs (the full ones are too large to ship), the
full-precision model of the real run and the pattern-mean net and solver with
their paths pointed at those copies. Everything is written under one folder
with the repository's layout, so Caffe run from the repository root there
finds it by the same relative paths as here.

The inputs also hold the GPU speed comparison's nets (``bench/``: the step
nets of ResNet-20 and its pattern net for `caffe train`, and their graphs for
PyTorch; sepnets.benchmarks.bench_gpu), made here where pycaffe is.

On the GPU host the same module reads the check's Caffe and GTest logs,
compares CPU and GPU, rewrites its solver and runs the speed comparison
(subcommands ``accuracy``, ``agree``, ``train-summary``, ``losses-agree``,
``gtest-summary``, ``solver``, ``bench-gpu``) with the project's log parser
and ``caffe_pb2``, so that ``scripts/device_check.sh`` is only shell
plumbing. Those need nothing but the Python standard library and protobuf
(the host has no numpy, no pycaffe; PyTorch only for ``bench-gpu``).
"""
import os
import re
import shutil
import statistics

from . import REPO_ROOT
from .cli import parser
from .errors import UserError
from .caffeio.run import caffe_path
from .fileio import atomic_path

DEFAULT_MODEL = "models/cifar10-resnet20-8000/cifar10-resnet20-8000.caffemodel"
PATTERN_NET = "prototxt/cifar10-resnet20-pattern-mean"
DATA = "data/cifar10/v3"


def prepare(out, model, data_root, n_test, n_train, iters, seed, bench=True):
    """Write the check's inputs under `out`; return the files written."""
    from .caffeio.proto import write_message
    from .data.datum_lmdb import lmdb_count, lmdb_subset
    from .pipeline.nets import read_run_net, run_net, run_solver
    src = os.path.join(data_root, "cifar10", "v3")
    for name in ("train_lmdb", "test_lmdb", "mean_train.binaryproto", "mean_test.binaryproto"):
        if not os.path.exists(os.path.join(src, name)):
            raise UserError(os.path.join(src, name), "missing; prepare the data first "
                            "(python tools/prepare_cifar10.py --version 3)")
    if not os.path.isfile(model):
        raise UserError(model, "no such model (run tools/run_experiment.py cifar10-resnet20 "
                        "first, or pass --model)")
    with atomic_path(out, is_dir=True) as tmp:
        dst = os.path.join(tmp, DATA)
        os.makedirs(dst)
        for split, n in (("test", n_test), ("train", n_train)):
            total = lmdb_count(os.path.join(src, f"{split}_lmdb"))
            lmdb_subset(os.path.join(src, f"{split}_lmdb"), os.path.join(dst, f"{split}_lmdb"),
                        min(n, total))
            shutil.copy(os.path.join(src, f"mean_{split}.binaryproto"), dst)
        shutil.copy(model, os.path.join(tmp, "full.caffemodel"))
        # Paths as Caffe will see them from the repository root on the host.
        final = os.path.abspath(out)
        net = run_net(read_run_net(os.path.join(REPO_ROOT, PATTERN_NET, "train_val.prototxt")),
                      os.path.join(final, "data"))
        for layer in net.layer:
            if layer.HasField("data_param") and layer.data_param.batch_size > 100:
                layer.data_param.batch_size = 100
        net_path = os.path.join(tmp, "pattern_mean.prototxt")
        write_message(net_path, net, "ResNet-20 pattern-mean net on the check's data subset",
                      by="scripts/device_check.sh prepare")
        solver = run_solver(os.path.join(REPO_ROOT, PATTERN_NET, "finetune_solver.prototxt"),
                            os.path.join(final, "pattern_mean.prototxt"), iters,
                            dict(test_iter=max(1, n_test // 100), test_interval=iters,
                                 snapshot=iters, display=10),
                            os.path.join(final, "snap"))
        solver.random_seed = seed
        solver.snapshot = 0
        solver.snapshot_after_train = False
        write_message(os.path.join(tmp, "solver.prototxt"), solver,
                      "fine-tune solver of the check (CPU unless caffe is given -gpu)",
                      by="scripts/device_check.sh prepare")
        if bench:
            from .benchmarks import bench_gpu
            bench_gpu.prepare(os.path.join(tmp, "bench"))
    return sorted(os.path.relpath(os.path.join(d, f), out)
                  for d, _, files in os.walk(out) for f in files)


def _final_top1(path):
    from .caffeio.log import parse_log
    acc = parse_log(path).accuracy()
    if acc.top1 is None:
        raise UserError(path, "caffe printed no top-1 accuracy")
    return acc.top1


def cmd_inputs(a):
    if min(a.test_images, a.train_images, a.iters) < 1:
        raise UserError(None, "--test-images, --train-images and --iters must be >= 1")
    out = os.path.abspath(a.out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(out, "exists and is not a folder")
    files = prepare(out, a.model, os.path.abspath(a.data), a.test_images, a.train_images,
                    a.iters, a.seed, bench=not a.no_bench)
    print(f"wrote {caffe_path(out)}: {len(files)} files")
    return 0


def cmd_accuracy(a):
    print(f"{_final_top1(a.log):g}")
    return 0


def cmd_agree(a):
    """CPU and GPU runs of the same binary must give the same test accuracy."""
    cpu, gpu = _final_top1(a.cpu_log), _final_top1(a.gpu_log)
    print(f"top-1: CPU {cpu:g}  GPU {gpu:g}")
    if abs(cpu - gpu) > a.tolerance:
        raise UserError(a.gpu_log, f"CPU {cpu:g} and GPU {gpu:g} disagree (more than "
                        f"{a.tolerance:g})")
    return 0


def cmd_train_summary(a):
    from .benchmarks.bench_gpu import step_times
    from .caffeio.log import parse_log
    log = parse_log(a.log)
    its, _, losses = log.series("loss")
    if not its:
        raise UserError(a.log, "no training iterations logged")
    acc = log.accuracy()
    top1 = "-" if acc.top1 is None else f"{acc.top1:g}"
    with open(a.log, errors="replace") as f:
        steps = step_times(f.read())
    speed = f"; {statistics.median(steps):.1f} ms/iteration" if steps else ""
    print(f"Iteration {its[0]} loss {losses[0]:g}; Iteration {its[-1]} loss {losses[-1]:g}; "
          f"test top-1 {top1}{speed}")
    return 0


def compare_losses(cpu_log, gpu_log):
    """(common iterations, CPU losses, GPU losses, largest relative difference)
    of two training logs of the same seeded run."""
    from .caffeio.log import parse_log
    runs = []
    for path in (cpu_log, gpu_log):
        its, _, losses = parse_log(path).series("loss")
        runs.append(dict(zip(its, losses)))
    common = sorted(set(runs[0]) & set(runs[1]))
    if len(common) < 2:
        raise UserError(gpu_log, f"fewer than two iterations logged by both runs ({common})")
    cpu = [runs[0][i] for i in common]
    gpu = [runs[1][i] for i in common]
    worst = max(abs(c - g) / max(1.0, abs(c)) for c, g in zip(cpu, gpu))
    return common, cpu, gpu, worst


def cmd_losses_agree(a):
    """CPU and GPU training from the same model and seed log the same losses."""
    its, cpu, gpu, worst = compare_losses(a.cpu_log, a.gpu_log)
    print("training loss at iterations " + ", ".join(map(str, its)) + ": CPU "
          + " ".join(f"{v:g}" for v in cpu) + ", GPU " + " ".join(f"{v:g}" for v in gpu)
          + f"; largest difference {worst:.2g}")
    if worst > a.tolerance:
        raise UserError(a.gpu_log, f"CPU and GPU losses differ by {worst:.2g} (more than "
                        f"{a.tolerance:g})")
    return 0


_GTEST_SUITE = re.compile(r"^\[----------\] \d+ tests? from (\S+?)(?:, where TypeParam = (.+))?$")
_GTEST_RESULT = re.compile(r"^\[\s+(OK|FAILED)\s+\] ([^\s.]+)\.([^\s,]+)(?:, where .*)? \(\d+ ms\)$")
#: Groups of tests the GPU check reports on: a suite belongs to a group when
#: its name or its type parameter contains the marker.
GTEST_GROUPS = (("cuDNN", "CuDNN"), ("NCCL", "NCCL"), ("GPU", "GPU"))


def gtest_summary(text):
    """What a GTest log says: {"passed": n, "failed": [names], "finished":
    bool, "groups": {group: [passed, run]}} (groups: GTEST_GROUPS)."""
    params, passed, failed = {}, 0, []
    groups = {g: [0, 0] for g, _ in GTEST_GROUPS}
    for line in text.splitlines():
        m = _GTEST_SUITE.match(line)
        if m:
            params[m.group(1)] = m.group(2) or ""
            continue
        m = _GTEST_RESULT.match(line)
        if not m:
            continue
        ok, suite = m.group(1) == "OK", m.group(2)
        passed += ok
        if not ok:
            failed.append(f"{suite}.{m.group(3)}")
        for group, marker in GTEST_GROUPS:
            if marker in suite or marker in params.get(suite, "") or \
                    (group == "GPU" and "CuDNN" in params.get(suite, "")):
                groups[group][0] += ok
                groups[group][1] += 1
    finished = re.search(r"^\[==========\] \d+ tests? from .* ran\.", text, re.M) is not None
    return {"passed": passed, "failed": failed, "finished": finished, "groups": groups}


def cmd_gtest_summary(a):
    with open(a.log, errors="replace") as f:
        r = gtest_summary(f.read())
    run = r["passed"] + len(r["failed"])
    print(f"{run} tests, {r['passed']} passed, {len(r['failed'])} failed"
          + "".join(f"; {g}: {p}/{n} passed" for g, (p, n) in r["groups"].items())
          + ("" if r["finished"] else "; the binary did not finish"))
    problems = []
    if r["failed"]:
        problems.append("failed: " + ", ".join(r["failed"][:5])
                        + (" ..." if len(r["failed"]) > 5 else ""))
    if not r["finished"]:
        problems.append("the test binary stopped before the end")
    for group in a.expect or []:
        if group not in r["groups"]:
            raise UserError("--expect", f"unknown group {group} (known: "
                            + ", ".join(r["groups"]) + ")")
        if r["groups"][group][1] == 0:
            problems.append(f"no {group} tests ran")
    if problems:
        raise UserError(a.log, "; ".join(problems))
    return 0


def cmd_bench_gpu(a):
    """The GPU speed comparison on the prepared nets: report to --out."""
    from .benchmarks import bench_gpu
    from .fileio import write_text_atomic
    results = bench_gpu.run(a.folder, a.gpu, a.iterations, a.repeats, a.torch_python)
    report = bench_gpu.format_report(
        results, a.iterations, a.repeats,
        f"python -m sepnets.device_check bench-gpu --gpu {a.gpu} --iterations {a.iterations} "
        f"--repeats {a.repeats}")
    print(report, end="")
    if a.out:
        write_text_atomic(a.out, report)
    return 0


def cmd_solver(a):
    """The check's solver with fewer iterations (the CPU's share)."""
    from .caffeio.proto import read_solver, write_message
    s = read_solver(a.src)
    s.max_iter = a.max_iter
    s.test_interval = a.test_interval or a.max_iter
    write_message(a.dst, s, f"{a.src} with max_iter {a.max_iter}",
                  by="scripts/device_check.sh run")
    return 0


def cmd_test_iter(a):
    from .caffeio.proto import read_solver
    s = read_solver(a.solver)
    if not s.test_iter:
        raise UserError(a.solver, "has no test_iter")
    print(s.test_iter[0])
    return 0


def main(argv=None):
    p = parser("python -m sepnets.device_check",
               "The Python side of scripts/device_check.sh (a CUDA build checked on a GPU\n"
               "host). inputs: data subsets, the full-precision model, the pattern-mean net\n"
               "and solver, under one folder that travels with the repository; on the host:\n"
               "accuracy / agree / train-summary read the check's Caffe logs, solver writes\n"
               "the CPU's shorter solver.",
               ["python -m sepnets.device_check inputs --out .device/check",
                "python -m sepnets.device_check inputs --out .device/check --iters 300",
                "python -m sepnets.device_check agree out/caffe_test_cpu.log out/caffe_test_gpu.log",
                "python -m sepnets.device_check train-summary out/train_gpu.log",
                "python -m sepnets.device_check solver .device/check/solver.prototxt "
                "/tmp/cpu.prototxt --max-iter 20",
                "python -m sepnets.device_check losses-agree out/train_cpu.log out/train_gpu.log",
                "python -m sepnets.device_check gtest-summary out/gtest_gpu.log --expect GPU cuDNN",
                "python -m sepnets.device_check bench-gpu .device/check/bench "
                "--out out/bench_train_gpu.md"])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    i = sub.add_parser("inputs", help="write the check's inputs (here)")
    i.add_argument("--out", default=os.path.join(REPO_ROOT, ".device", "check"),
                   help="output folder (replaced; default: .device/check)")
    i.add_argument("--model", default=os.path.join(REPO_ROOT, DEFAULT_MODEL),
                   help=f"full-precision ResNet-20 model (default: {DEFAULT_MODEL})")
    i.add_argument("--data", default=os.path.join(REPO_ROOT, "data"),
                   help="data folder holding cifar10/v3 (default: data)")
    i.add_argument("--test-images", type=int, default=500, help="test subset (default: 500)")
    i.add_argument("--train-images", type=int, default=256, help="train subset (default: 256)")
    i.add_argument("--iters", type=int, default=300, help="fine-tuning iterations (default: 300)")
    i.add_argument("--no-bench", action="store_true",
                   help="leave out the GPU speed comparison's nets (bench/)")
    i.add_argument("--seed", type=int, default=1, help="solver random_seed (default: 1)")
    i.set_defaults(func=cmd_inputs)
    c = sub.add_parser("accuracy", help="the final test top-1 of a caffe test/train log")
    c.add_argument("log")
    c.set_defaults(func=cmd_accuracy)
    g = sub.add_parser("agree", help="CPU and GPU logs give the same top-1 (exit 2 if not)")
    g.add_argument("cpu_log")
    g.add_argument("gpu_log")
    g.add_argument("--tolerance", type=float, default=0.002,
                   help="largest allowed difference (default 0.002)")
    g.set_defaults(func=cmd_agree)
    t = sub.add_parser("train-summary", help="first and last loss, final top-1 of a train log")
    t.add_argument("log")
    t.set_defaults(func=cmd_train_summary)
    v = sub.add_parser("solver", help="a copy of a solver with another max_iter")
    v.add_argument("src")
    v.add_argument("dst")
    v.add_argument("--max-iter", type=int, required=True)
    v.add_argument("--test-interval", type=int, help="default: --max-iter")
    v.set_defaults(func=cmd_solver)
    n = sub.add_parser("test-iter", help="the test batches of a solver")
    n.add_argument("solver")
    n.set_defaults(func=cmd_test_iter)
    la = sub.add_parser("losses-agree",
                        help="CPU and GPU training logs give the same losses (exit 2 if not)")
    la.add_argument("cpu_log")
    la.add_argument("gpu_log")
    la.add_argument("--tolerance", type=float, default=1e-3,
                    help="largest difference, relative to max(1, |loss|) (default 1e-3)")
    la.set_defaults(func=cmd_losses_agree)
    gs = sub.add_parser("gtest-summary",
                        help="tests run / passed / failed of a GTest log, by group "
                             "(exit 2 on a failure)")
    gs.add_argument("log")
    gs.add_argument("--expect", nargs="+", metavar="GROUP",
                    help="groups that must have run: " + ", ".join(g for g, _ in GTEST_GROUPS))
    gs.set_defaults(func=cmd_gtest_summary)
    bg = sub.add_parser("bench-gpu", help="the GPU speed comparison on the prepared nets "
                                          "(Caffe with cuDNN, Caffe 1.0, PyTorch)")
    bg.add_argument("folder", help="the prepared bench/ folder (inputs)")
    bg.add_argument("--out", help="Markdown report to write")
    bg.add_argument("--gpu", type=int, default=0, help="GPU id (default 0)")
    bg.add_argument("--iterations", type=int, default=50,
                    help="training steps per timed run (default 50)")
    bg.add_argument("--repeats", type=int, default=3, help="timed runs (default 3)")
    bg.add_argument("--torch-python", default=None,
                    help="Python with CUDA torch (default: this one)")
    bg.set_defaults(func=cmd_bench_gpu)
    a = p.parse_args(argv)
    return a.func(a)


if __name__ == "__main__":
    import sys
    from .cli import run
    sys.exit(run(main))
