#!/usr/bin/env python3
"""Training-step speed on the CPU, side by side in one run: the project's Caffe
(engine DEFAULT: oneDNN convolutions, fused BatchNorm/Scale), the same binary
with Caffe 1.0's own engines (engine CAFFE), and PyTorch on the same graph.
With --gpu N, on that GPU (a CUDA build with cuDNN): Caffe with cuDNN, Caffe
1.0's GPU code and PyTorch with cuDNN (SEPNETS_BENCH_PYTHON or python3 must
have CUDA torch)."""
import os
import sys

from sepnets import REPO_ROOT
from sepnets.benchmarks.bench_train import DEFAULT_OUT, NETS, PARITY_MODEL, PARITY_OUT, command
from sepnets.cli import parser, run


def build_parser():
    keys = [n[0] for n in NETS]
    p = parser("bench_train.py", __doc__.strip() + "\n\nRatios are only meaningful with "
               "nothing else running on the machine (stop training runs first).",
               ["python tools/bench_train.py",
                "python tools/bench_train.py --nets resnet20 mobilenet --repeats 3",
                "python tools/bench_train.py --threads 2 --iterations 5 --repeats 5 "
                f"--out {DEFAULT_OUT}",
                "python tools/bench_train.py --nets resnet20 --no-torch   # Caffe engines only",
                "python tools/bench_train.py --parity --parity-iters 100   # real caffe train, "
                "both engine sets",
                "SEPNETS_BENCH_PYTHON=python3 python tools/bench_train.py --gpu 0   # ResNet-20 "
                "(+ pattern) on GPU 0"])
    p.add_argument("--nets", nargs="+", choices=keys, default=keys, metavar="NET",
                   help="nets to time (default: all): " + ", ".join(keys))
    p.add_argument("--batch", type=int, metavar="N",
                   help="batch size for every net (default: 128 for CIFAR nets, 16 for "
                        "224 x 224 ones)")
    p.add_argument("--threads", type=int, default=2,
                   help="threads for Caffe (OpenMP, OpenBLAS) and PyTorch (default: 2)")
    p.add_argument("--iterations", type=int,
                   help="steps per timed run (default: 3; 50 with --gpu)")
    p.add_argument("--gpu", type=int, metavar="ID",
                   help="time training steps on this GPU instead (default nets: "
                        "resnet20 resnet20-pattern; report: logs/benchmarks/bench_train_gpu.md)")
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
    return command(a, "python tools/bench_train.py" + "".join(
        " " + x for x in (argv if argv is not None else sys.argv[1:])))


if __name__ == "__main__":
    sys.exit(run(main))
