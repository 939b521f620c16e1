#!/usr/bin/env python3
"""Export a Caffe net and its weights to ONNX, keeping pattern signs as low-bit integers."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from sepnets.cli import run  # noqa: E402
from sepnets.deploy.onnx_export import main  # noqa: E402
if __name__ == "__main__":
    sys.exit(run(main))
