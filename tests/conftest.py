"""Shared fixtures: the repo, the shared data folder, the built Caffe."""
import io
import os
import re
import tarfile

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
    from sepnets.caffeio.env import caffe_tool
    return caffe_tool("caffe")


@pytest.fixture(scope="session")
def caffe():
    from sepnets.caffeio.env import import_caffe
    c = import_caffe()
    c.set_mode_cpu()
    return c


@pytest.fixture(scope="session")
def tiny_cifar(tmp_path_factory, shared_dir):
    """DATA/cifar10/v3 from the first images of each class of the shared archive
    (30 train, 10 test per class), written by the project's data module."""
    from PIL import Image
    from sepnets.data import cifar10
    from sepnets.data.cifar10_sources import CLASSES, Cifar10
    want = {"train": 30, "test": 10}
    pat = re.compile(r"(train|test)/([a-z]+)/(\d+)\.jpg$")
    got = {"train": [], "test": []}
    archive = os.path.join(shared_dir, "data", "cifar10-jpeg.tar.gz")
    with tarfile.open(archive, "r|gz") as tar:
        for m in tar:
            g = pat.search(m.name)
            if not g or int(g.group(3)) >= want[g.group(1)]:
                continue
            im = Image.open(io.BytesIO(tar.extractfile(m).read())).convert("RGB")
            got[g.group(1)].append((CLASSES.index(g.group(2)),
                                    np.asarray(im, np.uint8).transpose(2, 0, 1)))
    images = {s: np.stack([x for _, x in v]) for s, v in got.items()}
    labels = {s: np.array([y for y, _ in v], np.int64) for s, v in got.items()}
    assert len(labels["train"]) == 10 * want["train"]
    data = tmp_path_factory.mktemp("runner_data")
    cifar10.write_version(Cifar10(images, labels, archive, "image-folder"),
                          str(data / "cifar10"), 3, progress=lambda _m: None)
    return data


def tool_main(name):
    """The main(argv) of tools/<name>.py: the tools own their parsers, and
    tools/ is not a package, so the file is run as a module of its own."""
    import runpy
    return runpy.run_path(os.path.join(REPO, "tools", f"{name}.py"), run_name=f"tool_{name}")["main"]


def run_tool(name, argv):
    """tools/<name>.py's main on `argv` as its command line runs it (user
    errors: their one line and exit 2)."""
    from sepnets.cli import run
    return run(tool_main(name), [str(a) for a in argv])


@pytest.fixture(scope="session")
def cifar(tmp_path_factory, shared_dir, caffe):
    """The tiny CIFAR-10 net the quant/size/pack tests share, trained once per
    session (tiny_cifar_net.trained_cifar)."""
    from tiny_cifar_net import trained_cifar
    return trained_cifar(tmp_path_factory, shared_dir, caffe)


def tool_parser(name):
    """The argparse parser of tools/<name>.py."""
    import runpy
    return runpy.run_path(os.path.join(REPO, "tools", f"{name}.py"),
                          run_name=f"tool_{name}")["build_parser"]()


def one_line_error(res, *needles, tool=None):
    """A tool's answer to bad input, as the project promises it: exit 2, one
    line on stderr (``<tool>: error: ...`` when `tool` is given) holding every
    needle, no traceback. Returns the line."""
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stdout + res.stderr, res.stderr
    if tool:
        assert lines[0].startswith(f"{tool}: error: "), lines[0]
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]
