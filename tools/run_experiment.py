#!/usr/bin/env python3
"""Run a SEP-Nets experiment end to end (train, binarize, fine-tune) with the real caffe binary."""
import os
import sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from sepnets.cli import run  # noqa: E402
from sepnets.experiment import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run(main))
