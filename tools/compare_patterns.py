#!/usr/bin/env python3
"""Count the binary-pattern signs that differ between two models of one net, per k x k layer."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from sepnets.cli import run  # noqa: E402
from sepnets.pattern_drift import main  # noqa: E402
if __name__ == "__main__":
    sys.exit(run(main))
