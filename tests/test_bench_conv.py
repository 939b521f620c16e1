"""tools/bench_conv.py: real `caffe time` runs of the stock and the pattern
variants of a small deploy net, and its errors."""
import os
import subprocess
import sys

import pytest

from sepnets.benchmarks import bench_conv
from sepnets.errors import UserError


def _deploy(caffe, path):
    from caffe import layers as L
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 3, 12, 12]))
    n.conv3 = L.Convolution(n.data, convolution_param=dict(
        num_output=4, kernel_size=3, pad=1, weight_filler=dict(type="msra")))
    n.conv1 = L.Convolution(n.conv3, convolution_param=dict(
        num_output=4, kernel_size=1, weight_filler=dict(type="msra")))
    n.fc = L.InnerProduct(n.conv1, num_output=3, weight_filler=dict(type="xavier"))
    proto = n.to_proto()
    proto.force_backward = True
    path.write_text(str(proto))
    return str(path)


def test_compare_times_only_the_kxk_layers(caffe, tmp_path):
    model = _deploy(caffe, tmp_path / "deploy.prototxt")
    r = bench_conv.compare(model, batch=3, iterations=1)
    assert r["layers"] == ["conv3"]
    assert r["device"] == "CPU"
    assert set(r["results"]) == {label for label, _, _ in bench_conv.VARIANTS}
    for v in r["results"].values():
        assert v["fwd"] > 0 and v["bwd"] > 0
        assert v["net_total"] >= 0          # caffe prints whole milliseconds here
    table = bench_conv.format_table(r)
    assert "(CPU), batch 3" in table
    assert table.count("\n| ") == len(bench_conv.VARIANTS) + 1


def test_gpu_on_a_cpu_only_build_is_one_clear_error(caffe, tmp_path):
    from sepnets.caffeio.env import _paths_file_entries, caffe_tool
    tools = os.path.dirname(os.path.realpath(caffe_tool("caffe")))
    if any(e.get("cuda") == "ON" and os.path.realpath(e.get("caffe_tools", "")) == tools
           for e in _paths_file_entries()):
        pytest.skip("the caffe in use was built with CUDA")
    model = _deploy(caffe, tmp_path / "deploy.prototxt")
    with pytest.raises(UserError, match="caffe time failed"):
        bench_conv.compare(model, batch=1, iterations=1, gpu=0)


def test_cli_rejects_bad_numbers_and_nets(repo_root, tmp_path):
    tool = os.path.join(repo_root, "tools", "bench_conv.py")
    out = subprocess.run([sys.executable, tool, "--gpu", "-1"], capture_output=True, text=True)
    assert out.returncode == 2 and "--gpu must be" in out.stderr
    bad = tmp_path / "bad.prototxt"
    bad.write_text("layer { name: 'x' type: 'Input' input_param { shape { dim: 1 dim: 3 } } }\n")
    out = subprocess.run([sys.executable, tool, "--model", str(bad)], capture_output=True,
                         text=True)
    assert out.returncode == 2
    assert "bad.prototxt" in out.stderr and "no k x k" in out.stderr


LEGACY = """name: "legacy"
input: "data"
input_dim: 4
input_dim: 3
input_dim: 8
input_dim: 8
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" } } }
"""


def test_legacy_input_header_sets_the_batch(caffe, tmp_path):
    model = tmp_path / "legacy.prototxt"
    model.write_text(LEGACY)
    r = bench_conv.compare(str(model), batch=2, iterations=1)
    assert r["layers"] == ["conv"] and r["batch"] == 2


@pytest.mark.parametrize("case", ["png", "failed run", "out is model"])
def test_bad_models_get_one_line_and_nothing_overwritten(repo_root, tmp_path, case):
    tool = os.path.join(repo_root, "tools", "bench_conv.py")
    model = tmp_path / "model.prototxt"
    args = ["--model", str(model), "--batch", "1", "--iterations", "1"]
    if case == "png":
        model.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
        expect = "not a text prototxt"
    elif case == "failed run":   # parses, but Caffe refuses the net: its message, no frame
        model.write_text(LEGACY.replace('bottom: "data"', 'bottom: "nowhere"'))
        expect = "caffe time failed: Unknown bottom blob 'nowhere'"
    else:
        model.write_text(LEGACY)
        args += ["--out", str(model)]
        expect = "would overwrite an input"
    before = model.read_bytes()
    out = subprocess.run([sys.executable, tool] + args, capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    assert expect in out.stderr and out.stderr.count("\n") == 1, out.stderr
    assert model.read_bytes() == before
