#!/usr/bin/env python3
"""Pack a Caffe model into a compact .sepnet file and unpack it back to a caffemodel."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from sepnets.cli import run  # noqa: E402
from sepnets.packing import main  # noqa: E402
if __name__ == "__main__":
    sys.exit(run(main))
