"""tools/compare_patterns.py: sign flips of the k x k filters between two models."""
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import one_line_error
from sepnets import REPO_ROOT

TOOL = os.path.join(REPO_ROOT, "tools", "compare_patterns.py")


def _model(path, layers):
    """A caffemodel of (name, type, kernel, weight array) convolutions."""
    from sepnets.caffeio.proto import caffe_pb2
    from sepnets.caffeio.blobs import set_blob
    net = caffe_pb2().NetParameter()
    for name, kind, kernel, w in layers:
        layer = net.layer.add(name=name, type=kind)
        layer.convolution_param.kernel_size.append(kernel)
        layer.convolution_param.num_output = w.shape[0]
        set_blob(layer.blobs.add(), w)
    path.write_bytes(net.SerializeToString())
    return str(path)


@pytest.fixture()
def pair(tmp_path):
    rng = np.random.default_rng(0)
    w3 = rng.normal(size=(4, 2, 3, 3)).astype(np.float32)
    w1 = rng.normal(size=(4, 4, 1, 1)).astype(np.float32)
    w3.reshape(-1)[5] = 0.5
    flipped = w3.copy()
    flipped.reshape(-1)[:5] *= -1                   # 5 signs of 72
    flipped.reshape(-1)[5] = 0.0                    # 0 is +1, as in the layer: no flip
    a = _model(tmp_path / "a.caffemodel", [("c3", "Convolution", 3, w3),
                                           ("c1", "Convolution", 1, w1)])
    b = _model(tmp_path / "b.caffemodel", [("c3", "BinaryPatternConvolution", 3, flipped),
                                           ("c1", "Convolution", 1, -w1)])
    return a, b, w3


def test_counts_flipped_signs_of_kxk_layers_only(pair):
    from sepnets.compress.binarize import mean_scale
    from sepnets.compress.compare_patterns import compare
    a, b, w3 = pair
    rows = compare(a, b)
    assert [r.name for r in rows] == ["c3"]          # the 1x1 conv stays full precision
    r = rows[0]
    assert (r.kernel, r.weights, r.flipped, r.pattern) == ("3x3", 72, 5, True)
    assert r.alpha_a == pytest.approx(float(mean_scale(w3).mean()))
    same = compare(a, a)
    assert same[0].flipped == 0 and not same[0].pattern


def test_baked_patterns_count_as_binary(tmp_path, pair):
    from sepnets.compress.compare_patterns import compare
    a, _, w3 = pair
    baked = np.where(w3 >= 0, 0.04, -0.04).astype(np.float32)
    b = _model(tmp_path / "baked.caffemodel", [("c3", "Convolution", 3, baked)])
    r = compare(a, b)[0]
    assert (r.flipped, r.pattern, r.alpha_b) == (0, True, pytest.approx(0.04))


def test_out_keeps_a_record_of_the_binary_layers(tmp_path, pair):
    """--out writes the comparison as a record: totals over the binary layers
    only (the 1x1 is not a pattern layer; a full-precision k x k would not count
    either), every layer, the two models; read back by read_record."""
    from sepnets.compress.compare_patterns import read_record
    a, b, _ = pair
    out = tmp_path / "rec" / "ste_sign_flips.json"
    res = subprocess.run([sys.executable, TOOL, a, b, "--out", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    rec = read_record(str(out))
    assert (rec["binary_layers"], rec["binary_weights"], rec["binary_flipped"]) == (1, 72, 5)
    assert rec["binary_fraction"] == pytest.approx(5 / 72)
    assert (rec["model_a"], rec["model_b"]) == (a, b)
    assert [r["name"] for r in rec["layers"]] == ["c3"]
    assert read_record(str(tmp_path / "none.json")) is None
    bad = tmp_path / "bad.json"
    for text, message in (("{", "unreadable sign-flip record"),
                          ('{"binary_weights": 3}', "not a sign-flip record")):
        bad.write_text(text)
        with pytest.raises(Exception) as e:
            read_record(str(bad))
        assert message in str(e.value) and "bad.json" in str(e.value)


def test_bad_input_is_one_line_error(tmp_path, pair):
    a, _, _ = pair
    other = _model(tmp_path / "other.caffemodel",
                   [("c3", "Convolution", 3, np.ones((2, 2, 3, 3), np.float32))])
    only1 = _model(tmp_path / "only1.caffemodel",
                   [("c1", "Convolution", 1, np.ones((2, 2, 1, 1), np.float32))])
    nokernel = tmp_path / "nokernel.caffemodel"
    from sepnets.caffeio.blobs import set_blob
    from sepnets.caffeio.proto import caffe_pb2
    m = caffe_pb2().NetParameter()
    set_blob(m.layer.add(name="c3", type="Convolution").blobs.add(),
             np.ones((2, 2, 3, 3), np.float32))
    nokernel.write_bytes(m.SerializeToString())
    text = tmp_path / "notes.caffemodel"
    text.write_text("hello")
    for argv, message in (([a, other], "not the same net"),
                          ([only1, a], "no k x k (k > 1) convolution"),
                          ([a, str(text)], "not a Caffe model"),
                          ([str(nokernel), a], "convolution 'c3' declares no kernel size"),
                          ([a, str(tmp_path / "missing.caffemodel")], "missing.caffemodel")):
        res = subprocess.run([sys.executable, TOOL, *argv], capture_output=True, text=True,
                             timeout=120)
        one_line_error(res, message, tool="compare_patterns.py")


def test_fixed_pattern_finetuning_keeps_every_sign():
    """On the models of the project's 12,000-iteration run (models/): step 3 (fixed
    patterns) flips no sign of a binary layer, only of the full-precision
    conv1 and projection shortcuts."""
    models = os.path.join(REPO_ROOT, "models")
    binary, refined = "cifar10-resnet20-12000-bipattern-offset0.04", "cifar10-resnet20-12000-refined"
    res = subprocess.run([sys.executable, TOOL, "--json",
                          os.path.join(models, binary, f"{binary}.caffemodel"),
                          os.path.join(models, refined, f"{refined}.caffemodel")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    import json
    rows = json.loads(res.stdout)
    binary = [r for r in rows if r["pattern"]]
    assert len(binary) == 18 and all(r["flipped"] == 0 for r in binary)
    assert {r["name"] for r in rows if not r["pattern"]} == \
        {"conv1", "map32_1_conv_proj", "map64_1_conv_proj"}
    assert sum(r["flipped"] for r in rows if not r["pattern"]) > 0
