#!/usr/bin/env python3
"""Print a per-layer storage table and the model size of a Caffe net (1-bit patterns, 8-bit BQ, fp32)."""
import sys

from sepnets.cli import run
from sepnets.compress.model_summary import main

if __name__ == "__main__":
    sys.exit(run(main))
