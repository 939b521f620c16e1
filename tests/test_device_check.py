"""The inputs of scripts/device_check.sh: spread data subsets, the model, and a
pattern-mean net and solver that the real caffe runs from them alone."""
import os
import subprocess

import pytest

from sepnets import device_check
from sepnets.errors import UserError
from sepnets.pipeline.nets import read_run_net as read_net, read_run_solver as read_solver
from sepnets.data.datum_lmdb import lmdb_count as lmdb_entries


@pytest.fixture(scope="module")
def full_model(caffe, repo_root, tmp_path_factory):
    """An untrained full-precision ResNet-20 model of the catalog's deploy net."""
    path = str(tmp_path_factory.mktemp("device_model") / "full.caffemodel")
    net = caffe.Net(os.path.join(repo_root, "prototxt", "cifar10-resnet20", "deploy.prototxt"),
                    caffe.TEST)
    net.save(path)
    return path


def test_prepared_inputs_run_in_caffe(full_model, tiny_cifar, caffe_bin, repo_root, tmp_path):
    out = tmp_path / "check"
    device_check.prepare(str(out), full_model, str(tiny_cifar), n_test=50, n_train=40,
                         iters=2, seed=3)
    data = out / "data" / "cifar10" / "v3"
    assert lmdb_entries(str(data / "test_lmdb")) == 50
    assert lmdb_entries(str(data / "train_lmdb")) == 40
    net = read_net(str(out / "pattern_mean.prototxt"))
    catalog = read_net(os.path.join(repo_root, device_check.PATTERN_NET, "train_val.prototxt"))
    assert [layer.type for layer in net.layer] == [layer.type for layer in catalog.layer]
    assert sum(layer.type == "BinaryPatternConvolution" for layer in net.layer) >= 18
    sources = [layer.data_param.source for layer in net.layer if layer.HasField("data_param")]
    assert sources and all(s.startswith(str(out)) for s in sources)
    solver = read_solver(str(out / "solver.prototxt"))
    assert (solver.max_iter, solver.random_seed, solver.test_iter[0]) == (2, 3, 1)
    proc = subprocess.run([caffe_bin, "test", "-model", str(out / "pattern_mean.prototxt"),
                           "-weights", str(out / "full.caffemodel"), "-iterations", "1"],
                          capture_output=True, text=True, env=dict(os.environ,
                                                                  GLOG_logtostderr="1"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "] acctop1 = " in proc.stderr
    proc = subprocess.run([caffe_bin, "train", "-solver", str(out / "solver.prototxt"),
                           "-weights", str(out / "full.caffemodel")],
                          capture_output=True, text=True, env=dict(os.environ,
                                                                  GLOG_logtostderr="1"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Optimization Done" in proc.stderr
    assert not list(out.glob("snap_iter_*")), "the check's solver must not snapshot"


def test_missing_data_or_model_is_one_clear_error(full_model, tiny_cifar, tmp_path):
    with pytest.raises(UserError, match="prepare the data first"):
        device_check.prepare(str(tmp_path / "a"), full_model, str(tmp_path), 5, 5, 1, 1)
    with pytest.raises(UserError, match="no such model"):
        device_check.prepare(str(tmp_path / "b"), str(tmp_path / "none.caffemodel"),
                             str(tiny_cifar), 5, 5, 1, 1)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_bundle_refuses_a_cpu_build_and_a_missing_folder(repo_root, tmp_path):
    """scripts/device_bundle.sh packs CUDA builds only, with one clear line."""
    script = os.path.join(repo_root, "scripts", "device_bundle.sh")
    out = subprocess.run(["bash", script, "build", str(tmp_path / "b")], capture_output=True,
                         text=True, cwd=repo_root)
    assert out.returncode == 1
    assert out.stderr == "[device-bundle] error: build: not a CUDA build " \
                         "(configure with -DSEPNETS_CUDA=ON)\n"
    out = subprocess.run(["bash", script, str(tmp_path / "nowhere"), str(tmp_path / "b")],
                         capture_output=True, text=True, cwd=repo_root)
    assert out.returncode == 1 and "not a build folder of this project" in out.stderr
    assert not (tmp_path / "b").exists()
    out = subprocess.run(["bash", os.path.join(repo_root, "scripts", "device_check.sh")],
                         capture_output=True, text=True, cwd=repo_root)
    assert out.returncode == 2 and out.stderr.startswith("usage: ")


def _check(*args):
    import sys
    return subprocess.run([sys.executable, "-m", "sepnets.device_check", *args],
                          capture_output=True, text=True, timeout=120)


def test_host_side_reads_the_committed_gpu_logs(repo_root, tmp_path):
    """device_check.sh's log reading, on the logs of the GPU check it made:
    the numbers are the log parser's, the mismatch an exit 2 with one line."""
    from sepnets.caffeio.log import parse_log
    d = os.path.join(repo_root, "logs", "device-check")
    test_log, train_log = os.path.join(d, "caffe_test.log"), os.path.join(d, "train_gpu.log")
    res = _check("accuracy", test_log)
    assert res.returncode == 0 and float(res.stdout) == parse_log(test_log).accuracy().top1
    res = _check("agree", test_log, test_log)
    assert res.returncode == 0 and res.stdout.startswith("top-1: CPU "), res.stderr
    res = _check("agree", test_log, train_log, "--tolerance", "0")
    want = parse_log(test_log).accuracy().top1 != parse_log(train_log).accuracy().top1
    assert (res.returncode == 2) == want
    if want:
        assert len(res.stderr.strip().splitlines()) == 1 and "disagree" in res.stderr
    log = parse_log(train_log)
    its, _, losses = log.series("loss")
    res = _check("train-summary", train_log)
    assert res.returncode == 0
    assert res.stdout.startswith(f"Iteration {its[0]} loss {losses[0]:g}; "
                                 f"Iteration {its[-1]} loss {losses[-1]:g}")
    empty = tmp_path / "empty.log"
    empty.write_text("nothing here\n")
    res = _check("accuracy", str(empty))
    assert res.returncode == 2 and str(empty) in res.stderr


def test_host_side_rewrites_the_solver(repo_root, tmp_path):
    src = os.path.join(repo_root, "prototxt", "cifar10-resnet20-pattern-mean",
                       "finetune_solver.prototxt")
    out = tmp_path / "cpu.prototxt"
    assert _check("solver", src, str(out), "--max-iter", "20").returncode == 0
    s, orig = read_solver(str(out)), read_solver(src)
    assert (s.max_iter, s.test_interval) == (20, 20)
    assert (s.base_lr, list(s.stepvalue), s.test_iter[0]) == \
        (orig.base_lr, list(orig.stepvalue), orig.test_iter[0])
    res = _check("test-iter", src)
    assert res.returncode == 0 and int(res.stdout) == orig.test_iter[0]
