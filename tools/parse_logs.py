#!/usr/bin/env python3
"""Turn Caffe logs of experiments into CSV files and result tables (Full / BiPattern / Refined)."""
import os
import sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from sepnets.cli import run  # noqa: E402
from sepnets.results import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run(main))
