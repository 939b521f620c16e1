#!/usr/bin/env python3
"""Print a per-layer storage table and the model size of a Caffe net (1-bit patterns, 8-bit BQ, fp32)."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from sepnets.cli import run  # noqa: E402
from sepnets.model_size import main  # noqa: E402
if __name__ == "__main__":
    sys.exit(run(main))
