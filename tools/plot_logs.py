#!/usr/bin/env python3
"""Plot training loss and test top-1 of each experiment's three steps on one axis (PNG)."""
import sys

from sepnets.cli import run
from sepnets.report.plot_logs import main

if __name__ == "__main__":
    sys.exit(run(main))
