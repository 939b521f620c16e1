#!/usr/bin/env python3
"""Plot training loss and test top-1 of each experiment's three steps on one axis (PNG)."""
import os
import sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from sepnets.cli import run  # noqa: E402
from sepnets.plots import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run(main))
