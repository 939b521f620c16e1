#!/usr/bin/env python3
"""Turn Caffe logs of experiments into CSV files and result tables (Full / BiPattern / Refined)."""
import sys

from sepnets.cli import int_range, parser, run
from sepnets.report.parse_logs import command
from sepnets.report.results import add_log_arguments


def build_parser():
    p = parser("parse_logs.py",
               "Turn the Caffe logs of experiments into CSV files and result tables\n"
               "(Full / BiPattern / Refined, top-1 and top-5) in the release README's form:\n"
               "<exp>/csv/<log>.csv, <exp>/results.md and, for a folder of experiments,\n"
               "RESULTS.md beside them, with the paper-form comparisons across runs (the\n"
               "ResNet depth trend, the small networks; python/sepnets/report/comparisons.py).\n"
               "The tables are printed too. Experiment folder layout: 1_full.log,\n"
               "2_bipattern*.log, 3_refined.log, 4_ste.log (optional), experiment.json\n"
               "(optional); see python/sepnets/results.py.",
               ["python tools/parse_logs.py logs/",
                "python tools/parse_logs.py logs/8000-iters/cifar10-resnet20",
                "python tools/parse_logs.py logs/ --top1 loss3/top-1 --top5 loss3/top-5"])
    add_log_arguments(p)
    p.add_argument("--digits", type=int_range(0, 12), default=4,
                   help="decimals in the tables, 0 to 12 (default 4)")
    p.add_argument("--quiet", action="store_true", help="do not print the tables")
    return p


def main(argv=None):
    return command(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(run(main))
