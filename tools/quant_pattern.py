#!/usr/bin/env python3
"""Binarize the k x k convolutions of a trained Caffe model into SEP-Nets binary patterns."""
import sys

from sepnets.cli import run
from sepnets.compress.quant_pattern import main

if __name__ == "__main__":
    sys.exit(run(main))
