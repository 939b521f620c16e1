#!/usr/bin/env python3
"""Convert ImageNet class folders into train/val LMDBs, list files and a mean with Caffe's tools."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from sepnets.cli import run                       # noqa: E402
from sepnets.data.imagenet import main            # noqa: E402

if __name__ == "__main__":
    sys.exit(run(main))
