#!/usr/bin/env python3
"""Plot training loss and test top-1 of each experiment's three steps on one axis (PNG)."""
import sys

from sepnets.cli import int_range, parser, run
from sepnets.report.plot_logs import FIGURE_NAME, command
from sepnets.report.results import add_log_arguments


def build_parser():
    p = parser("plot_logs.py",
               "Plot each experiment's training loss and test top-1 against iterations\n"
               "and against wall-clock seconds, the steps on one axis: full precision,\n"
               "the BiPattern evaluations (markers), then refined (and STE) training\n"
               f"offset after step 1. Writes <experiment>/{FIGURE_NAME}; given the logs\n"
               "root, also the comparisons' depth_trend.png and small_nets.png beside\n"
               "RESULTS.md (when there is something to plot).",
               ["python tools/plot_logs.py logs/",
                "python tools/plot_logs.py logs/8000-iters/cifar10-resnet20 --dpi 150",
                "python tools/plot_logs.py logs/ --top1 loss3/top-1"])
    add_log_arguments(p)
    p.add_argument("--dpi", type=int_range(10, 1200), default=120,
                   help="resolution, 10 to 1200 (default 120)")
    return p


def main(argv=None):
    return command(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(run(main))
