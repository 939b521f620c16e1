#!/usr/bin/env python3
"""Generate, check or summarise every network and solver prototxt under prototxt/."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from sepnets.cli import run                       # noqa: E402
from sepnets.netgen.cli import main               # noqa: E402

if __name__ == "__main__":
    sys.exit(run(main))
