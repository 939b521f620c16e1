"""tools/bench_train.py: the training-mode variants it times, Caffe's timings
it reads, and the graph it hands to PyTorch."""
import os

import pytest

from sepnets.benchmarks import bench_train as train_step
from sepnets.benchmarks.caffe_time import caffe_time
from sepnets.caffeio.proto import read_prototxt


@pytest.fixture(scope="module")
def resnet20(repo_root, caffe):
    return read_prototxt(os.path.join(repo_root, train_step.NETS[0][2]))


def test_training_variant_times_a_training_step(resnet20):
    from caffe.proto import caffe_pb2
    for stock in (False, True):
        net = train_step.training_variant(resnet20, 3, stock)
        bn = [l for l in net.layer if l.type == "BatchNorm"]
        assert bn and not any(l.batch_norm_param.HasField("use_global_stats") for l in bn)
        engines = {l.batch_norm_param.engine for l in bn} | \
            {l.scale_param.engine for l in net.layer if l.type == "Scale"} | \
            {l.convolution_param.engine for l in net.layer
             if l.type in train_step.CONV_TYPES}
        assert engines == ({caffe_pb2.BatchNormParameter.CAFFE} if stock
                           else {caffe_pb2.BatchNormParameter.DEFAULT})
        loss = [l for l in net.layer if l.type == "SoftmaxWithLoss"]
        assert len(loss) == 1 and list(loss[0].bottom)[-1] == "label"
        assert not any(l.type == "Softmax" for l in net.layer)
        shapes = {l.name: list(l.input_param.shape[0].dim) for l in net.layer
                  if l.type == "Input"}
        assert shapes["label"] == [3] and shapes["data"][0] == 3
    # The deploy net itself is left as it was.
    assert any(l.type == "Softmax" for l in resnet20.layer)


def test_caffe_time_reads_every_layer(resnet20, tmp_path):
    from google.protobuf import text_format
    net = train_step.training_variant(resnet20, 2, False)
    path = tmp_path / "r20.prototxt"
    path.write_text(text_format.MessageToString(net))
    layers, totals, rss = caffe_time(str(path), 1, 1)
    total = totals["Forward-Backward"]
    names = {l.name for l in net.layer}
    assert names <= set(layers) | {"label", "data"}
    assert total > 0 and rss > 10
    # A training step: the BatchNorm layers have real backward passes.
    bn = [l.name for l in net.layer if l.type == "BatchNorm"]
    assert sum(layers[n][1] for n in bn) > 0


def test_caffe_time_failure_is_one_line(tmp_path):
    bad = tmp_path / "bad.prototxt"
    bad.write_text('layer { name: "x" type: "NoSuchLayer" top: "x" }')
    with pytest.raises(Exception) as e:
        caffe_time(str(bad), 1, 1)
    assert "caffe time failed" in str(e.value) and "\n" not in str(e.value)


def test_torch_spec_describes_every_net(repo_root, tmp_path, caffe):
    from google.protobuf import text_format
    for key, _, path, _ in train_step.NETS:
        net = train_step.training_variant(
            read_prototxt(os.path.join(repo_root, path)), 1, False)
        p = tmp_path / f"{key}.prototxt"
        p.write_text(text_format.MessageToString(net))
        spec = train_step.torch_spec(str(p))
        assert spec["input"]["shape"][0] == 1, key
        assert spec["outputs"] == ["loss"], key
        layers = [l for l in net.layer if l.type != "Input"]
        assert [l["name"] for l in spec["layers"]] == [l.name for l in layers], key
        for entry in spec["layers"]:
            if entry["type"] in train_step.CONV_TYPES:
                w = entry["params"]["weight"]
                assert len(w) == 4 and w[0] % entry["group"] == 0, (key, entry["name"])


def test_torch_side_runs_the_graph(repo_root, tmp_path, caffe):
    """Needs the benchmark's own environment (.venv-bench), which CI does not
    install: without it this test is skipped, saying so."""
    from sepnets.benchmarks import torch_env
    try:
        python = torch_env.bench_python(install=False)
    except Exception as e:  # no PyTorch here
        pytest.skip(f"no benchmark environment: {e}")
    from google.protobuf import text_format
    net = train_step.training_variant(
        read_prototxt(os.path.join(repo_root, train_step.NETS[2][2])), 1, False)
    p = tmp_path / "sepnet.prototxt"
    p.write_text(text_format.MessageToString(net))
    spec = train_step.torch_spec(str(p))
    ms, version = train_step.torch_time(spec, 1, 1)
    assert ms > 0 and version
    del python
