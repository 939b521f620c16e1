#!/usr/bin/env python3
"""Convert CIFAR-10 (official archives or image folders) into LMDBs for one preprocessing version."""
import sys

from sepnets.cli import run
from sepnets.data.cifar10 import main

if __name__ == "__main__":
    sys.exit(run(main))
