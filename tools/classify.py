#!/usr/bin/env python3
"""Classify images with a trained net in Caffe or onnxruntime, preprocessed as in training."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from sepnets.cli import run  # noqa: E402
from sepnets.deploy.classify import main  # noqa: E402
if __name__ == "__main__":
    sys.exit(run(main))
