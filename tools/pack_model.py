#!/usr/bin/env python3
"""Pack a Caffe model into a compact .sepnet file and unpack it back to a caffemodel."""
import sys

from sepnets.cli import run
from sepnets.compress.pack_model import main

if __name__ == "__main__":
    sys.exit(run(main))
