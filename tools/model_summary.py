#!/usr/bin/env python3
"""Print a per-layer storage table and the model size of a Caffe net (1-bit patterns, 8-bit BQ, fp32)."""
import sys

from sepnets.cli import parser, run
from sepnets.compress.model_summary import command


def build_parser():
    p = parser("model_summary.py",
               "Per-layer storage table and model size of a Caffe net: binary patterns at "
               "1 bit per weight (+ fp32 alpha per filter), BQ 1x1/FC weights at 8 bits, "
               "everything else fp32; MB = 10^6 bytes.",
               ["python tools/model_summary.py prototxt/cifar10-resnet20/deploy.prototxt",
                "python tools/model_summary.py prototxt/cifar10-resnet20-pattern-mean/deploy.prototxt r20_pattern.caffemodel",
                "python tools/model_summary.py prototxt/sepnet-b/deploy.prototxt --bq",
                "python tools/model_summary.py --all"])
    p.add_argument("prototxt", nargs="?", help="net definition (train_val or deploy)")
    p.add_argument("caffemodel", nargs="?",
                   help="trained weights: shapes come from here, and stock Convolutions "
                        "holding baked +/-a filters count as binary")
    p.add_argument("--bq", action="store_true",
                   help="SEP-Net-BQ: count 1x1 conv and fully connected weights as 8-bit")
    p.add_argument("--input-shape", metavar="C,H,W",
                   help="input shape for prototxts whose data source is not readable here "
                        "(only needed without a caffemodel)")
    p.add_argument("--baked", nargs="+", default=(), metavar="LAYER",
                   help="without a caffemodel: count these stock Convolutions as holding "
                        "baked +/-a patterns (release-style fix-pattern nets)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--all", action="store_true",
                   help="a Markdown table of every generated net (sepnets.netgen.catalog) "
                        "beside the paper's sizes")
    return p


def main(argv=None):
    return command(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(run(main))
