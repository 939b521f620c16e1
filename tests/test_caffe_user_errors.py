"""The project's caffe binary on user errors: one clear message, exit 1, no
stack trace (unless SEPNETS_CAFFE_TRACE=1); the snapshot folder is created;
a missing LMDB is named with the command that makes it."""
import os
import subprocess

import pytest

TINY_NET = """
name: "tiny"
layer { name: "data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 4 dim: 3 } shape { dim: 4 }
                     data_filler { type: "gaussian" }
                     data_filler { type: "constant" value: 1 } } }
layer { name: "bn" type: "BatchNorm" bottom: "data" top: "data" }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


def run_caffe(caffe_bin, args, cwd, trace=False):
    env = dict(os.environ)
    env.pop("SEPNETS_CAFFE_TRACE", None)
    if trace:
        env["SEPNETS_CAFFE_TRACE"] = "1"
    return subprocess.run([caffe_bin] + args, cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=120)


def has_stack_trace(text):
    return any(line.lstrip().startswith("@ ") for line in text.splitlines())


def write_solver(folder, net, prefix, **extra):
    (folder / "net.prototxt").write_text(net)
    fields = dict(net='"net.prototxt"', base_lr=0.01, lr_policy='"fixed"', max_iter=2, snapshot=2,
                  snapshot_prefix=f'"{prefix}"', solver_mode="CPU", display=1, **extra)
    (folder / "solver.prototxt").write_text("".join(f"{k}: {v}\n" for k, v in fields.items()))
    return "solver.prototxt"


def test_solver_creates_snapshot_folder(caffe_bin, tmp_path):
    solver = write_solver(tmp_path, TINY_NET, "runs/new/deeper/tiny")
    r = run_caffe(caffe_bin, ["train", "-solver", solver], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "runs/new/deeper/tiny_iter_2.caffemodel").is_file()


def test_missing_lmdb_names_path_and_command(caffe_bin, tmp_path):
    net = TINY_NET.replace(
        'layer { name: "data" type: "DummyData" top: "data" top: "label"\n'
        '  dummy_data_param { shape { dim: 4 dim: 3 } shape { dim: 4 }\n'
        '                     data_filler { type: "gaussian" }\n'
        '                     data_filler { type: "constant" value: 1 } } }',
        'layer { name: "data" type: "Data" top: "data" top: "label"\n'
        '  data_param { source: "data/ilsvrc12/train_lmdb" batch_size: 4 backend: LMDB } }')
    assert "ilsvrc12" in net
    solver = write_solver(tmp_path, net, "snap/tiny")
    r = run_caffe(caffe_bin, ["train", "-solver", solver], tmp_path)
    assert r.returncode == 1
    assert "Cannot open LMDB data/ilsvrc12/train_lmdb: No such file or directory" in r.stderr
    assert "python tools/prepare_imagenet.py" in r.stderr and "--sample" in r.stderr
    assert not has_stack_trace(r.stderr)
    assert "SEPNETS_CAFFE_TRACE=1" in r.stderr.splitlines()[-1]


@pytest.mark.parametrize("case", ["missing solver", "bad prototxt", "shape mismatch"])
def test_user_errors_have_no_stack_trace(caffe_bin, tmp_path, case):
    if case == "missing solver":
        args = ["train", "-solver", "nowhere/solver.prototxt"]
        expect = "nowhere/solver.prototxt"
    elif case == "bad prototxt":
        (tmp_path / "bad.prototxt").write_text('layer { name: "x" type: "InnerProduct" bogus: 1 }')
        args = ["time", "-model", "bad.prototxt", "-iterations", "1"]
        expect = "bad.prototxt"
    else:
        net = TINY_NET.replace('bottom: "ip" bottom: "label"', 'bottom: "ip" bottom: "data"')
        (tmp_path / "mismatch.prototxt").write_text(net)
        args = ["time", "-model", "mismatch.prototxt", "-iterations", "1"]
        expect = "Check failed"
    r = run_caffe(caffe_bin, args, tmp_path)
    assert r.returncode == 1, r.stderr[-1000:]
    assert expect in r.stderr
    assert not has_stack_trace(r.stderr)


def test_trace_on_request(caffe_bin, tmp_path):
    r = run_caffe(caffe_bin, ["train", "-solver", "nowhere/solver.prototxt"], tmp_path,
                  trace=True)
    assert r.returncode != 0
    assert has_stack_trace(r.stderr)
