#!/usr/bin/env python3
"""Turn Caffe logs of experiments into CSV files and result tables (Full / BiPattern / Refined)."""
import sys

from sepnets.cli import run
from sepnets.report.parse_logs import main

if __name__ == "__main__":
    sys.exit(run(main))
