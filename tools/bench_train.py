#!/usr/bin/env python3
"""Training-step speed on the CPU, side by side in one run: the project's Caffe
(engine DEFAULT: oneDNN convolutions, fused BatchNorm/Scale), the same binary
with Caffe 1.0's own engines (engine CAFFE), and PyTorch on the same graph."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from sepnets import REPO_ROOT  # noqa: E402
from sepnets.benchmarks import engine_parity, train_step  # noqa: E402
from sepnets.cli import parser, run  # noqa: E402
from sepnets.errors import UserError  # noqa: E402
from sepnets.fileio import write_text_atomic  # noqa: E402

DEFAULT_OUT = "logs/benchmarks/bench_train.md"
PARITY_OUT = "logs/benchmarks/engine_parity.md"
PARITY_NET = "prototxt/cifar10-resnet20/train_val.prototxt"
PARITY_MODEL = "runs/12000-iters/cifar10-resnet20/1_full/snap_iter_12000.caffemodel"


def build_parser():
    keys = [n[0] for n in train_step.NETS]
    p = parser("bench_train.py", __doc__.strip() + "\n\nRatios are only meaningful with "
               "nothing else running on the machine (stop training runs first).",
               ["python tools/bench_train.py",
                "python tools/bench_train.py --nets resnet20 mobilenet --repeats 3",
                "python tools/bench_train.py --threads 2 --iterations 5 --repeats 5 "
                f"--out {DEFAULT_OUT}",
                "python tools/bench_train.py --nets resnet20 --no-torch   # Caffe engines only",
                "python tools/bench_train.py --parity --parity-iters 100   # real caffe train, "
                "both engine sets"])
    p.add_argument("--nets", nargs="+", choices=keys, default=keys, metavar="NET",
                   help="nets to time (default: all): " + ", ".join(keys))
    p.add_argument("--batch", type=int, metavar="N",
                   help="batch size for every net (default: 128 for CIFAR nets, 16 for "
                        "224 x 224 ones)")
    p.add_argument("--threads", type=int, default=2,
                   help="threads for Caffe (OpenMP, OpenBLAS) and PyTorch (default: 2)")
    p.add_argument("--iterations", type=int, default=3,
                   help="steps per timed run (default: 3)")
    p.add_argument("--repeats", type=int, default=3,
                   help="alternating runs of each side; min and median reported (default: 3)")
    p.add_argument("--no-torch", action="store_true",
                   help="time only the two Caffe engine sets (no PyTorch)")
    p.add_argument("--parity", action="store_true",
                   help="instead: fine-tune the trained ResNet-20 with a fixed seed once with "
                        "each engine set (caffe train), compare the losses and the seconds "
                        f"per iteration, write {PARITY_OUT}")
    p.add_argument("--parity-iters", type=int, default=100,
                   help="iterations of each --parity run (default: 100)")
    p.add_argument("--parity-model", default=PARITY_MODEL,
                   help=f"caffemodel to fine-tune (default: {PARITY_MODEL})")
    p.add_argument("--data", default=os.path.join(REPO_ROOT, "data"),
                   help="prepared data sets for --parity (DIR/cifar10/v3; default: data/)")
    p.add_argument("--out", default=DEFAULT_OUT,
                   help=f"Markdown report to write (default: {DEFAULT_OUT}); '-' prints only")
    return p


def main(argv=None):
    a = build_parser().parse_args(argv)
    for name, value, top in (("--threads", a.threads, 64), ("--iterations", a.iterations, 1000),
                             ("--repeats", a.repeats, 100), ("--batch", a.batch, 4096)):
        if value is not None and not 1 <= value <= top:
            raise UserError(name, f"must be between 1 and {top} (got {value})")
    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    command = train_step.main_command(argv if argv is not None else sys.argv[1:])
    if a.parity:
        if not 1 <= a.parity_iters <= 100000:
            raise UserError("--parity-iters", f"must be between 1 and 100000 "
                                              f"(got {a.parity_iters})")
        r = engine_parity.compare(os.path.join(REPO_ROOT, PARITY_NET),
                                  os.path.join(REPO_ROOT, a.parity_model)
                                  if not os.path.isabs(a.parity_model) else a.parity_model,
                                  os.path.abspath(a.data), a.parity_iters, a.threads, say)
        return _emit(engine_parity.format_report(r, command),
                     PARITY_OUT if a.out == DEFAULT_OUT else a.out)
    if not a.no_torch:
        train_step.bench_python(say)
    results = []
    for key, label, path, batch in train_step.NETS:
        if key not in a.nets:
            continue
        say(f"[bench] {label}: {path}")
        results.append(train_step.bench_net(
            key, label, os.path.join(REPO_ROOT, path), a.batch or batch, a.iterations,
            a.repeats, a.threads, say, with_torch=not a.no_torch))
    return _emit(train_step.format_report(results, a.iterations, a.repeats, a.threads,
                                          command), a.out)


def _emit(report, out):
    """Print the report; write it to `out` (relative to the repository) unless '-'."""
    print(report, end="")
    if out != "-":
        write_text_atomic(out if os.path.isabs(out) else os.path.join(REPO_ROOT, out), report)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
