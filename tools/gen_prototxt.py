#!/usr/bin/env python3
"""Generate, check or summarise every network and solver prototxt under prototxt/."""
import sys

from sepnets.cli import parser, run
from sepnets import REPO_ROOT
from sepnets.netgen import catalog as cat
from sepnets.netgen.cli import DESCRIPTION, EXAMPLES, command


def build_parser():
    p = parser("gen_prototxt.py", DESCRIPTION, EXAMPLES)
    p.add_argument("--net", metavar="NAME",
                   help="only this net (a name from --list, e.g. cifar10-resnet20-pattern-mean), "
                        "family (" + ", ".join(cat.FAMILIES) + ") or GoogLeNet pattern "
                        "selection (googlenet-3x3, -5x5, -3x3-5x5, -projall1x1)")
    p.add_argument("--depth", metavar="N",
                   help="only the CIFAR-10 ResNet of depth N = 6n+2 and its pattern variants; "
                        "depths outside 20/32/44/56/110 are not in the catalog (write them "
                        "with --root elsewhere, or --check will call them stale)")
    p.add_argument("--check", action="store_true",
                   help="write nothing: generate into a temporary folder, compare with the "
                        "files under --root and exit 1 naming each missing, differing or "
                        "(without --net/--depth) stale file")
    p.add_argument("--summary", action="store_true",
                   help="write nothing: print the Markdown table of parameter counts (total, "
                        "k x k, 1 x 1, FC, other, binarized) and SEP-Net's layer table")
    p.add_argument("--list", action="store_true",
                   help="write nothing: print the catalog (name, kind, dataset, parent, files)")
    p.add_argument("--root", metavar="DIR", default=REPO_ROOT,
                   help="repository root to write prototxt/ under or check against "
                        "(default: this repository)")
    return p


def main(argv=None):
    return command(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(run(main))
