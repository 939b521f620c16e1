#!/usr/bin/env python3
"""Per-class top-1/top-5 of a model on its TEST data, under Caffe's tie rule and strictly, and its dead class channels."""
import sys

from sepnets.cli import int_range, parser, run
from sepnets.report.class_scores import command


def build_parser():
    p = parser("eval_classes.py",
               "Run a model over the TEST-phase data of its train_val prototxt and report\n"
               "top-1/top-5 per class twice: as Caffe's Accuracy layer counts (a class whose\n"
               "score ties the label's ranks above it) and strictly (only higher scores do),\n"
               "and the class channels that have one value on every image (dead behind a\n"
               "ReLU, say). Where a log's top-5 sits far below what the net ranks, this says\n"
               "why. Scores and labels: the bottoms of the first TEST Accuracy layer.",
               ["python tools/eval_classes.py prototxt/cifar10-squeezenet/train_val.prototxt "
                "/tmp/squeezenet_6700.caffemodel --batches 100 --names cifar10",
                "python tools/eval_classes.py prototxt/cifar10-resnet20/train_val.prototxt "
                "models/cifar10-resnet20-12000/cifar10-resnet20-12000.caffemodel "
                "--out /tmp/r20_classes.md"])
    p.add_argument("net", help="train_val prototxt with a TEST-phase data layer")
    p.add_argument("model", help=".caffemodel of that net")
    p.add_argument("--batches", type=int_range(1, 100000), default=100,
                   help="TEST batches to run (default 100: the CIFAR-10 test set at batch 100)")
    p.add_argument("--scores", metavar="BLOB", help="scores blob (default: the Accuracy layer's)")
    p.add_argument("--labels", metavar="BLOB", help="labels blob (default: the Accuracy layer's)")
    p.add_argument("--names", metavar="LIST",
                   help="class names, comma-separated, or 'cifar10' for CIFAR-10's")
    p.add_argument("--out", metavar="MD", help="also write the report there (atomically)")
    return p


def main(argv=None):
    return command(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(run(main))
