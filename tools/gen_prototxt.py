#!/usr/bin/env python3
"""Generate, check or summarise every network and solver prototxt under prototxt/."""
import sys

from sepnets.cli import run
from sepnets.netgen.cli import main

if __name__ == "__main__":
    sys.exit(run(main))
