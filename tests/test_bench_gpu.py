"""The GPU training-step comparison (sepnets.benchmarks.bench_gpu, used by
tools/bench_train.py --gpu and scripts/device_check.sh): the step nets it
runs in `caffe train`, the timings it reads from Caffe's display lines, its
report. The GPU runs themselves need a GPU host; here the step nets train in
CPU mode."""
import json
import os
import subprocess

import pytest

from sepnets.benchmarks import bench_gpu, bench_train
from sepnets.caffeio.proto import read_prototxt
from sepnets.errors import UserError

from conftest import tool_main


@pytest.fixture(scope="module")
def resnet20_pattern(repo_root, caffe):
    path = dict((n[0], n[2]) for n in bench_train.NETS)["resnet20-pattern"]
    return read_prototxt(os.path.join(repo_root, path))


def test_step_nets_feed_constants_and_pick_the_engines(resnet20_pattern):
    from caffe.proto import caffe_pb2
    for stock in (False, True):
        net = bench_gpu.step_net(resnet20_pattern, 4, stock)
        assert not any(l.type == "Input" for l in net.layer)
        data = [l for l in net.layer if l.type == "DummyData"]
        assert sorted(l.name for l in data) == ["data", "label"]
        for l in data:
            assert [f.type for f in l.dummy_data_param.data_filler] == ["constant"]
            assert l.dummy_data_param.shape[0].dim[0] == 4
        relu = {l.relu_param.engine for l in net.layer if l.type == "ReLU"}
        conv = {l.convolution_param.engine for l in net.layer
                if l.type in bench_train.CONV_TYPES}
        loss = [l for l in net.layer if l.type == "SoftmaxWithLoss"]
        assert len(loss) == 1
        if stock:  # Caffe 1.0's own code on every layer that has a cuDNN engine
            assert relu == {caffe_pb2.ReLUParameter.CAFFE}
            assert conv == {caffe_pb2.ConvolutionParameter.CAFFE}
            assert loss[0].softmax_param.engine == caffe_pb2.SoftmaxParameter.CAFFE
        else:
            assert relu == {caffe_pb2.ReLUParameter.DEFAULT}
            assert conv == {caffe_pb2.ConvolutionParameter.DEFAULT}
    assert any(l.type == "BinaryPatternConvolution" for l in net.layer)


def test_step_net_trains_and_its_timings_are_read(resnet20_pattern, caffe_bin, tmp_path):
    """The step net and solver run in `caffe train` (CPU mode here: the same
    solver with solver_mode CPU), and the display lines give one time per
    interval after the warm-up."""
    from google.protobuf import text_format
    net = tmp_path / "ours.prototxt"
    net.write_text(text_format.MessageToString(bench_gpu.step_net(resnet20_pattern, 2, False)))
    text = bench_gpu.solver_text(str(net), 2, 2, 0)
    assert "max_iter: 7\n" in text and "display: 2\n" in text and "snapshot: 0\n" in text
    solver = tmp_path / "solver.prototxt"
    solver.write_text(text.replace("solver_mode: GPU", "solver_mode: CPU"))
    proc = subprocess.run([caffe_bin, "train", "-solver", str(solver)], capture_output=True,
                          text=True, env=dict(os.environ, GLOG_logtostderr="1",
                                              OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    times = bench_gpu.step_times(proc.stderr)
    assert len(times) == 2 and all(t > 0 for t in times)
    assert not list(tmp_path.glob("*.caffemodel"))


def test_step_times_read_the_display_lines():
    log = ("I1203 10:00:00.000 1 solver.cpp:243] Iteration 0 (0 iter/s, 0.5s/50 iters), loss = 2\n"
           "I1203 10:00:01.000 1 solver.cpp:243] Iteration 50 (25 iter/s, 2s/50 iters), loss = 1\n"
           "I1203 10:00:02.000 1 solver.cpp:243] Iteration 100 (50 iter/s, 1s/50 iters), loss = 1\n"
           "I1203 10:00:03.000 1 solver.cpp:243] Iteration 150 (62.5 iter/s, 0.8s/50 iters), "
           "loss = 1\n")
    assert bench_gpu.step_times(log) == pytest.approx([20.0, 16.0])
    assert bench_gpu.step_times(log, skip=0) == pytest.approx([40.0, 20.0, 16.0])
    assert bench_gpu.step_times("no display lines\n") == []


def test_report_gives_the_ratios():
    results = [{"label": "ResNet-20", "batch": 128, "device": "NVIDIA H200",
                "torch_version": "2.13.0", "times": {"ours": [9.0, 10.0, 11.0],
                                                     "stock": [140.0, 145.0, 150.0],
                                                     "torch": [7.5, 8.0, 9.0]}}]
    text = bench_gpu.format_report(results, 50, 3, "python tools/bench_train.py --gpu 0")
    assert text.startswith("# Training-step speed on the GPU (NVIDIA H200)")
    row = [l for l in text.splitlines() if l.startswith("| ResNet-20 ")][0]
    assert "| 9.00 / 10.00 | 140.00 / 145.00 | 7.50 / 8.00 | **1.25x** | 18.12x | 14.50x faster |" \
        in row
    assert "PyTorch 2.13.0" in text and "TF32 off" in text


def test_run_needs_prepared_inputs_and_cli_checks(tmp_path):
    with pytest.raises(UserError, match="prepare the benchmark"):
        bench_gpu.run(str(tmp_path))
    main = tool_main("bench_train")
    with pytest.raises(UserError, match="GPU id"):
        main(["--gpu", "-1"])
    with pytest.raises(UserError, match="neither --parity nor --no-torch"):
        main(["--gpu", "0", "--no-torch"])
    with pytest.raises(UserError, match="unknown net"):
        bench_gpu.prepare(str(tmp_path), ["nonet"])


def test_prepare_writes_step_nets_and_graphs(tmp_path, caffe):
    manifest = bench_gpu.prepare(str(tmp_path), ["resnet20"], batch=8)
    assert [e["key"] for e in manifest] == ["resnet20"]
    e = manifest[0]
    assert e["batch"] == 8
    for which in ("ours", "stock", "torch"):
        assert (tmp_path / e[which]).is_file()
    with open(tmp_path / bench_gpu.MANIFEST) as f:
        assert json.load(f) == manifest
    with open(tmp_path / e["torch"]) as f:
        spec = json.load(f)
    assert spec["input"]["shape"][0] == 8 and spec["outputs"] == ["loss"]
