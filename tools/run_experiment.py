#!/usr/bin/env python3
"""Run a SEP-Nets experiment end to end (train, binarize, fine-tune) with the real caffe binary."""
import sys

from sepnets.cli import run
from sepnets.pipeline.run_experiment import main

if __name__ == "__main__":
    sys.exit(run(main))
