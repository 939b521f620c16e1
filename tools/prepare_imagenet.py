#!/usr/bin/env python3
"""Convert ImageNet class folders into train/val LMDBs, list files and a mean with Caffe's tools."""
import sys

from sepnets.cli import run
from sepnets.data.imagenet import main

if __name__ == "__main__":
    sys.exit(run(main))
