"""Generators of every network and solver prototxt of the project.

The committed files under ``prototxt/`` are outputs of this package (run
``python tools/gen_prototxt.py``); a test regenerates them and fails on any
difference, so the Python here is the single source of truth.

All paths written into the generated files (LMDBs, mean files, the solvers'
``net:`` and ``snapshot_prefix``) are relative to the repository root, because
Caffe resolves them against its working directory: run ``caffe`` from the
repository root. ``snapshot_prefix`` points under ``runs/<net name>/``, a folder
Caffe does not create; the experiment runner creates it before training.
"""
