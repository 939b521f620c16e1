"""SEP-Nets in Caffe: pattern binarization, network generators and the tools
around the three-step procedure (train, binarize, fine-tune).

The logic lives in this package; ``tools/*.py`` are thin command lines over it.
"""
import os

#: Repository root (python/sepnets/__init__.py -> ../..).
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
