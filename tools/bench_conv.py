#!/usr/bin/env python3
"""Time BinaryPatternConvolution against stock Convolution with `caffe time`."""
import sys

from sepnets.cli import run
from sepnets.bench_conv import main

if __name__ == "__main__":
    sys.exit(run(main))
