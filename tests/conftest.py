"""Shared fixtures: the repo, the shared data folder, the built Caffe."""
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "python"))


@pytest.fixture(scope="session")
def repo_root():
    return REPO


@pytest.fixture(scope="session")
def shared_dir():
    """The shared data folder (SEPNETS_SHARED_DIR, default ../shared)."""
    d = os.environ.get("SEPNETS_SHARED_DIR", os.path.join(os.path.dirname(REPO), "shared"))
    if not os.path.isdir(os.path.join(d, "data")):
        pytest.fail(f"shared data folder {d} not found; set SEPNETS_SHARED_DIR")
    return d


@pytest.fixture(scope="session")
def caffe_bin():
    from sepnets.caffe_env import caffe_tool
    return caffe_tool("caffe")


@pytest.fixture(scope="session")
def caffe():
    from sepnets.caffe_env import import_caffe
    c = import_caffe()
    c.set_mode_cpu()
    return c
