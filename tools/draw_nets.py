#!/usr/bin/env python3
"""Draw the PRB, the SEP-module and SEP-Net-R with Caffe's draw_net.py into docs/figures/."""
import sys

from sepnets.cli import parser, run
from sepnets.report.draw_nets import OUT, command


def build_parser():
    p = parser("draw_nets.py",
               "Draw the PRB, the SEP-module and SEP-Net-R with Caffe's draw_net.py\n"
               "(pydot + graphviz) into docs/figures/ (the pictures of docs/networks.md);\n"
               "the one-block prototxts are written there too.",
               ["python tools/draw_nets.py",
                "python tools/draw_nets.py --out /tmp/figures"])
    p.add_argument("--out", default=OUT, metavar="DIR",
                   help="folder for the prototxts and pictures (default docs/figures)")
    return p


def main(argv=None):
    return command(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(run(main))
