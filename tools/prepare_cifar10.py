#!/usr/bin/env python3
"""Convert CIFAR-10 (official archives or image folders) into LMDBs for one preprocessing version."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from sepnets.cli import run                       # noqa: E402
from sepnets.data.cifar10 import main             # noqa: E402

if __name__ == "__main__":
    sys.exit(run(main))
