#!/usr/bin/env python3
"""Binarize the k x k convolutions of a trained Caffe model into SEP-Nets binary patterns."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from sepnets.cli import run  # noqa: E402
from sepnets.binarize import main  # noqa: E402
if __name__ == "__main__":
    sys.exit(run(main))
