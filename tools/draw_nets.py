#!/usr/bin/env python3
"""Draw the PRB, the SEP-module and SEP-Net-R with Caffe's draw_net.py into docs/figures/."""
import sys

from sepnets.cli import run
from sepnets.report.draw_nets import main

if __name__ == "__main__":
    sys.exit(run(main))
