"""The experiment runner's command line: help, listing, the schedule it
writes into Caffe's solver and net files, and one-line errors for missing data."""
import io
import json
import os
import subprocess
import sys

import pytest
from google.protobuf import text_format

from conftest import one_line_error
from sepnets import REPO_ROOT

TOOL = "run_experiment.py"


def _tool(*args, env=None):
    return subprocess.run([sys.executable, os.path.join(REPO_ROOT, "tools", "run_experiment.py"),
                           *args], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, **(env or {})))


def test_help_lists_every_option_with_examples():
    from conftest import tool_parser
    res = _tool("--help")
    assert res.returncode == 0
    options = [s for a in tool_parser("run_experiment")._actions for s in a.option_strings]
    assert len(options) >= 20
    for opt in options:
        assert opt in res.stdout, opt
    examples = res.stdout.split("examples:", 1)[1]
    lines = [ln for ln in examples.splitlines() if "tools/run_experiment.py" in ln]
    assert len(lines) >= 5
    assert any("--quick" in ln for ln in lines) and any("--list" in ln for ln in lines)


def test_list_names_the_catalog_experiments(tmp_path):
    res = _tool("--list", "--data", str(tmp_path))
    assert res.returncode == 0, res.stderr
    names = [ln.split()[0] for ln in res.stdout.splitlines()]
    for n in ("cifar10-resnet20", "cifar10-resnet32", "cifar10-resnet44", "cifar10-resnet56",
              "googlenet-3x3", "googlenet-3x3-5x5", "sepnet"):
        assert n in names
    for n in ("cifar10-sepnet", "cifar10-mobilenet", "cifar10-squeezenet", "mobilenet-0.5"):
        assert n in names
    # a net without pattern variants is an experiment of step 1 alone
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("cifar10-mobilenet "))
    assert "full precision only" in line
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("googlenet-5x5 "))
    assert "0.05" in line and "data missing" in line


def test_both_sepnet_experiments_have_their_bq_step():
    """SEP-Net-BQ is a catalog entry of kind bq on ImageNet as on CIFAR-10
    (one mechanism), so both SEP-Net experiments end with step 5."""
    from sepnets.netgen.catalog import by_name
    from sepnets.pipeline.catalog import experiments
    exps = experiments()
    for exp, bq in (("sepnet", "sepnet-bq"), ("cifar10-sepnet", "cifar10-sepnet-bq")):
        e = exps[exp]
        assert e.bq is not None and e.bq.name == bq and e.bq.kind == "bq"
        assert e.bq.quantizes == e.mean.name
        assert (e.bq.train_val, e.bq.deploy) == (e.mean.train_val, e.mean.deploy)
    assert by_name()["sepnet-bq"].files() == []
    assert all(e.bq is None for n, e in exps.items() if "sepnet" not in n)


def test_missing_cifar_source_is_one_clear_line(tmp_path):
    missing = tmp_path / "nowhere" / "cifar10.tar.gz"
    res = _tool("cifar10-resnet20", "--quick", "--data", str(tmp_path / "data"),
                "--source", str(missing), "--runs-dir", str(tmp_path / "runs"),
                "--logs-dir", str(tmp_path / "logs"))
    one_line_error(res, str(missing), "not found", tool=TOOL)
    assert "preparing CIFAR-10" in res.stdout
    assert not (tmp_path / "runs").exists()


def test_missing_imagenet_data_names_path_and_command(tmp_path):
    res = _tool("googlenet-3x3", "--data", str(tmp_path / "d"), "--runs-dir",
                str(tmp_path / "runs"), "--logs-dir", str(tmp_path / "logs"))
    line = one_line_error(res, str(tmp_path / "d" / "ilsvrc12" / "train_lmdb"),
                           "tools/prepare_imagenet.py", tool=TOOL)
    assert "--out" in line


@pytest.mark.parametrize("args, needles", [
    (["cifar10-resnet21"], ["cifar10-resnet21", "unknown experiment", "cifar10-resnet20"]),
    ([], ["NAME", "--list"]),
    (["cifar10-resnet20", "--iters", "0"], ["--iters", "'0'"]),
    (["cifar10-resnet20", "--sweep", "0.09:0.02:0.01"], ["--sweep"]),
    (["cifar10-resnet20", "--finetune-scale", "biggest"], ["--finetune-scale"]),
])
def test_bad_arguments_are_one_line(args, needles):
    one_line_error(_tool(*args), *needles, tool=TOOL)


# ------------------------------------------------------------- what is written

def _args(*argv):
    from conftest import tool_parser
    return tool_parser("run_experiment").parse_args(["cifar10-resnet20", *argv])


@pytest.fixture(scope="module")
def r20():
    from sepnets.pipeline.catalog import experiments
    return experiments()["cifar10-resnet20"]


def test_real_and_quick_schedules(r20):
    from sepnets.pipeline.config import schedule
    s = schedule(r20, _args())
    assert (s["iters"], s["finetune_iters"], s["batch"], s["snapshot"], s["test_iter"]) == \
        (8000, 4000, 128, 500, 100)
    q = schedule(r20, _args("--quick"))
    assert (q["iters"], q["finetune_iters"], q["test_iter"], q["bn_fraction"]) == \
        (600, 200, 10, 0.95)
    assert s.get("bn_fraction") is None
    assert q["iters"] * q["batch"] < 20000          # minutes, not hours, on 2 cores
    o = schedule(r20, _args("--quick", "--iters", "500", "--batch", "64"))
    assert (o["iters"], o["batch"], o["finetune_iters"]) == (500, 64, 200)


def test_solver_scales_the_release_schedule(r20, tmp_path):
    from sepnets.pipeline.config import schedule
    from sepnets.pipeline.nets import run_solver
    s = schedule(r20, _args())
    full = run_solver(r20.full.solver, tmp_path / "tv.prototxt", 8000, s,
                      str(tmp_path / "1_full" / "snap"), test_first=False)
    assert (full.max_iter, list(full.stepvalue)) == (8000, [4800, 6400])
    assert full.base_lr == pytest.approx(0.1)
    assert (full.snapshot, full.test_interval, list(full.test_iter)) == (500, 500, [100])
    assert full.snapshot_prefix == str(tmp_path / "1_full" / "snap")
    assert not full.test_initialization and full.snapshot_after_train
    fine = run_solver(r20.fix.finetune_solver, "runs/x/3_refined/train_val.prototxt", 4000, s,
                      os.path.join(REPO_ROOT, "runs", "x", "3_refined", "snap"))
    assert list(fine.stepvalue) == [2400, 3200] and fine.base_lr == pytest.approx(0.01)
    assert fine.snapshot_prefix == "runs/x/3_refined/snap"    # relative to the repo root
    assert fine.net == "runs/x/3_refined/train_val.prototxt"
    # a test falls on the last iteration
    odd = run_solver(r20.full.solver, "tv", 150, dict(s, test_interval=100), "p")
    assert odd.test_interval == 75
    ste = run_solver(r20.mean.finetune_solver, "tv", 6000, s, "p", base_lr=0.05)
    assert ste.base_lr == pytest.approx(0.05) and list(ste.stepvalue) == [3600, 4800]
    # the text Caffe reads round-trips
    from sepnets.caffeio.proto import caffe_pb2
    again = text_format.Parse(text_format.MessageToString(fine), caffe_pb2().SolverParameter())
    assert again == fine


def test_run_net_sets_batch_and_data(r20, tmp_path):
    from sepnets.pipeline.nets import read_run_net as read_net, run_net
    net = run_net(read_net(r20.full.train_val), str(tmp_path / "d"), batch=128)
    data = [layer for layer in net.layer if layer.type == "Data"]
    assert [d.data_param.batch_size for d in data] == [128, 100]      # TRAIN, TEST
    assert data[0].data_param.source == str(tmp_path / "d" / "cifar10" / "v3" / "train_lmdb")
    assert data[1].transform_param.mean_file == \
        str(tmp_path / "d" / "cifar10" / "v3" / "mean_test.binaryproto")
    same = run_net(read_net(r20.full.train_val), os.path.join(REPO_ROOT, "data"))
    assert same.layer[0].data_param.source == "data/cifar10/v3/train_lmdb"
    assert same.layer[0].data_param.batch_size == 256             # the prototxt's


def test_ste_net_learns_the_latent_weights(r20):
    from sepnets.pipeline.nets import read_run_net as read_net, ste_net
    from sepnets.caffeio.proto import caffe_pb2
    pb2 = caffe_pb2()
    layers = set(r20.mean.pattern_layers)
    net = ste_net(read_net(r20.mean.train_val), read_net(r20.full.train_val), layers)
    pat = [layer for layer in net.layer if layer.name in layers]
    assert len(pat) == len(layers) > 0
    for layer in pat:
        assert layer.type == "BinaryPatternConvolution"
        assert layer.binary_pattern_param.train_mode == pb2.BinaryPatternParameter.STE
        assert layer.binary_pattern_param.scale_mode == pb2.BinaryPatternParameter.MEAN
        assert [p.lr_mult for p in layer.param] == [1.0, 2.0]      # W learns, no alpha
    faster = ste_net(read_net(r20.mean.train_val), read_net(r20.full.train_val), layers, 20)
    assert {tuple(p.lr_mult for p in layer.param) for layer in faster.layer
            if layer.name in layers} == {(20.0, 2.0)}                 # bias unchanged
    others = [(layer.name, list(layer.param)) for layer in net.layer if layer.name not in layers]
    assert others == [(layer.name, list(layer.param)) for layer in faster.layer
                      if layer.name not in layers]


def test_ste_options_are_part_of_the_schedule(r20, tmp_path):
    """A run whose step 4 started with one STE learning rate refuses to
    continue with another (step 4 would mix two schedules); before step 4
    the STE options are free."""
    from sepnets.errors import UserError
    from sepnets.pipeline.config import RunConfig, schedule
    from sepnets.pipeline.runner import Runner
    a = _args("--ste", "--ste-lr", "0.05", "--ste-lr-mult", "20", "--runs-dir",
              str(tmp_path / "runs"), "--logs-dir", str(tmp_path / "logs"))
    s = schedule(r20, a)
    assert (s["ste_lr"], s["ste_lr_mult"]) == (0.05, 20.0)
    assert schedule(r20, _args())["ste_lr_mult"] is None
    runner = Runner(r20, s, RunConfig.from_args(a), out=io.StringIO())
    os.makedirs(runner.runs)
    runner.load_state()
    b = _args("--ste", "--ste-lr-mult", "10", "--runs-dir", str(tmp_path / "runs"))
    again = Runner(r20, schedule(r20, b), RunConfig.from_args(b), out=io.StringIO())
    again.load_state()                              # no step 4 yet: the new options hold
    assert again.state["schedule"]["ste_lr_mult"] == 10
    again.step_state("4_ste")["status"] = "running"
    again.save_state()
    third = Runner(r20, schedule(r20, a), RunConfig.from_args(a), out=io.StringIO())
    with pytest.raises(UserError, match="ste_lr = None, not 0.05"):
        third.load_state()
    for bad in (["--ste-lr", "0"], ["--ste-lr-mult", "-2"], ["--ste-lr-mult", "inf"]):
        with pytest.raises(UserError, match="must be a number > 0"):
            _args(*bad)


def test_quick_runs_say_so_in_experiment_json(r20, tmp_path):
    """The record of a --quick run says "quick": true (the comparisons leave
    such runs out); a real run's record does not, even in a folder a quick
    run wrote before."""
    from sepnets.pipeline.config import RunConfig, schedule
    from sepnets.pipeline.runner import Runner
    for argv, quick in ((["--quick"], True), ([], None)):
        a = _args(*argv, "--runs-dir", str(tmp_path / f"runs{len(argv)}"),
                  "--logs-dir", str(tmp_path / "logs"))
        runner = Runner(r20, schedule(r20, a), RunConfig.from_args(a), out=io.StringIO())
        os.makedirs(runner.runs, exist_ok=True)
        os.makedirs(runner.logs, exist_ok=True)
        runner.load_state()
        runner.write_meta()
        with open(os.path.join(runner.logs, "experiment.json")) as f:
            meta = json.load(f)
        assert meta.get("quick") is quick and meta["model"].endswith("(quick)") == bool(quick)


def test_choose_scale_best_top1_then_lower_loss():
    from sepnets.pipeline.nets import MEAN, choose_scale
    ev = {"mean": dict(top1=0.20, loss=2.0), "offset0.05": dict(top1=0.30, loss=2.5),
          "offset0.06": dict(top1=0.30, loss=2.1), "offset0.07": dict(top1=float("nan"),
                                                                       loss=1.0)}
    scales = [MEAN, 0.05, 0.06, 0.07]
    assert choose_scale(scales, ev, "best") == 0.06
    assert choose_scale(scales, ev, MEAN) == MEAN
    assert choose_scale(scales, {}, "best") == MEAN


def test_reset_batchnorm_stats_empties_only_batchnorm(caffe, tmp_path):
    """Fine-tuning starts from emptied BatchNorm statistics; nothing else changes."""
    import numpy as np
    from caffe import layers as L
    from sepnets.caffeio.proto import reset_batchnorm_stats
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 3, 8, 8]))
    n.conv = L.Convolution(n.data, num_output=4, kernel_size=3, weight_filler=dict(type="msra"))
    n.bn = L.BatchNorm(n.conv)
    proto = tmp_path / "n.prototxt"
    proto.write_text(str(n.to_proto()))
    net = caffe.Net(str(proto), caffe.TRAIN)
    net.blobs["data"].data[...] = np.random.default_rng(0).standard_normal((2, 3, 8, 8))
    net.forward()
    assert net.params["bn"][2].data[0] != 0
    src, out = tmp_path / "m.caffemodel", tmp_path / "reset.caffemodel"
    net.save(str(src))
    assert reset_batchnorm_stats(str(src), str(out)) == 1
    again = caffe.Net(str(proto), str(out), caffe.TEST)
    for blob in again.params["bn"]:
        assert not np.any(blob.data)
    np.testing.assert_array_equal(again.params["conv"][0].data, net.params["conv"][0].data)
    assert src.read_bytes() != out.read_bytes()
