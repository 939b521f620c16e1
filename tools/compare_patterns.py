#!/usr/bin/env python3
"""Count the binary-pattern signs that differ between two models of one net, per k x k layer."""
import sys

from sepnets.cli import parser, run
from sepnets.compress.compare_patterns import command


def build_parser():
    p = parser("compare_patterns.py",
               "How many binary-pattern signs differ between two models of one net: per "
               "k x k convolution (k > 1), the weights whose sign (w >= 0 is +1) is not the "
               "same in A and B, and alpha = mean|W| per filter averaged over the layer.",
               ["python tools/compare_patterns.py runs/12000-iters/cifar10-resnet20/1_full/"
                "snap_iter_12000.caffemodel runs/12000-iters-ste8000/cifar10-resnet20/4_ste/"
                "snap_iter_8000.caffemodel",
                "python tools/compare_patterns.py A.caffemodel B.caffemodel --net "
                "prototxt/cifar10-resnet20/deploy.prototxt --json",
                "python tools/compare_patterns.py models/cifar10-resnet20-12000/"
                "cifar10-resnet20-12000.caffemodel models/cifar10-resnet20-ste-m20-bn/"
                "cifar10-resnet20-ste-m20-bn.caffemodel --out "
                "logs/12000-iters-ste6000-m20/cifar10-resnet20/ste_sign_flips.json"])
    p.add_argument("model_a", help="first .caffemodel (e.g. the full-precision model)")
    p.add_argument("model_b", help="second .caffemodel of the same net (e.g. after STE)")
    p.add_argument("--net", metavar="PROTOTXT",
                   help="net definition naming the layers (default: the definitions "
                        "model A carries, as Caffe saves them)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.add_argument("--out", metavar="JSON",
                   help="also keep the comparison as a record (totals over the binary layers "
                        "and every layer), as the runner keeps step 4's in a run's log folder "
                        "(ste_sign_flips.json), read by tools/parse_logs.py's depth trend")
    return p


def main(argv=None):
    return command(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(run(main))
