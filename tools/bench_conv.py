#!/usr/bin/env python3
"""Time BinaryPatternConvolution against stock Convolution with `caffe time`."""
import sys

from sepnets.cli import parser, run
from sepnets.benchmarks.bench_conv import DEFAULT_MODEL, command


def build_parser():
    p = parser("bench_conv.py",
               "Time BinaryPatternConvolution against stock Convolution with `caffe time` "
               "on the same network shapes, and print a Markdown table.",
               ["python tools/bench_conv.py",
                "python tools/bench_conv.py --batch 128 --iterations 10 "
                "--out logs/benchmarks/bench_conv_resnet20.md",
                "python tools/bench_conv.py --model prototxt/googlenet/deploy.prototxt --batch 32",
                "python tools/bench_conv.py --gpu 0 --iterations 20   # a CUDA build of Caffe"])
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"deploy prototxt with an Input layer (default: {DEFAULT_MODEL})")
    p.add_argument("--batch", type=int, default=128, help="batch size (default: 128)")
    p.add_argument("--iterations", type=int, default=5,
                   help="caffe time iterations per run (default: 5)")
    p.add_argument("--repeats", type=int, default=1,
                   help="runs per variant; the fastest is kept (default: 1)")
    p.add_argument("--gpu", type=int, metavar="N",
                   help="time on GPU N (caffe time -gpu N; needs Caffe built with CUDA)")
    p.add_argument("--out", help="also write the table to this Markdown file")
    return p


def main(argv=None):
    return command(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(run(main))
