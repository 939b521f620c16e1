#!/usr/bin/env python3
"""Count the binary-pattern signs that differ between two models of one net, per k x k layer."""
import sys

from sepnets.cli import run
from sepnets.compress.compare_patterns import main

if __name__ == "__main__":
    sys.exit(run(main))
