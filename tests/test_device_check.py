"""The inputs of scripts/device_check.sh: spread data subsets, the model, and a
pattern-mean net and solver that the real caffe runs from them alone."""
import json
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
    # The GPU speed comparison's nets travel along (bench_gpu.prepare).
    with open(out / "bench" / "manifest.json") as f:
        bench = json.load(f)
    assert [e["key"] for e in bench] == ["resnet20", "resnet20-pattern"]
    assert all((out / "bench" / e[k]).is_file() for e in bench for k in ("ours", "stock", "torch"))
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


def test_host_side_compares_cpu_and_gpu_losses(repo_root, tmp_path):
    """losses-agree: the committed CPU and GPU runs agree to 1e-4; a changed
    loss is an exit 2 with one line."""
    d = os.path.join(repo_root, "logs", "device-check")
    cpu, gpu = os.path.join(d, "train_cpu.log"), os.path.join(d, "train_gpu.log")
    res = _check("losses-agree", cpu, gpu)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("training loss at iterations 0, 10, 20: CPU 0.89116 ")
    its, a, b, worst = device_check.compare_losses(cpu, gpu)
    assert its == [0, 10, 20] and 0 < worst < 1e-4
    with open(gpu) as f:
        text = f.read()
    bad = tmp_path / "bad.log"
    bad.write_text(text.replace("loss = 0.648056", "loss = 0.7", 1))
    res = _check("losses-agree", cpu, str(bad))
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "CPU and GPU losses differ by" in res.stderr
    res = _check("train-summary", gpu)
    assert res.returncode == 0 and res.stdout.rstrip().endswith(" ms/iteration")


GTEST_LOG = """\
[==========] Running 7 tests from 4 test cases.
[----------] 2 tests from BinaryPatternConvolutionLayerTest/2, where TypeParam = caffe::GPUDevice<float>
[ RUN      ] BinaryPatternConvolutionLayerTest/2.TestForward3x3
[       OK ] BinaryPatternConvolutionLayerTest/2.TestForward3x3 (3 ms)
[ RUN      ] BinaryPatternConvolutionLayerTest/2.TestSetupErrors
[  FAILED  ] BinaryPatternConvolutionLayerTest/2.TestSetupErrors, where TypeParam = caffe::GPUDevice<float> (46 ms)
[----------] 2 tests from BinaryPatternConvolutionLayerTest/4, where TypeParam = caffe::CuDNNDevice<float>
[       OK ] BinaryPatternConvolutionLayerTest/4.TestForward3x3 (2 ms)
[       OK ] BinaryPatternConvolutionLayerTest/4.TestCuDNNMatchesCaffeEngine (9 ms)
[----------] 1 test from CuDNNConvolutionLayerTest/0, where TypeParam = float
[       OK ] CuDNNConvolutionLayerTest/0.TestSimpleConvolutionCuDNN (1 ms)
[----------] 2 tests from NCCLSingleRankTest
[       OK ] NCCLSingleRankTest.TestBroadcastAndAllReduce (80 ms)
[       OK ] NCCLSingleRankTest.TestLayerWiseReduce (70 ms)
[==========] 7 tests from 4 test cases ran. (300 ms total)
[  PASSED  ] 6 tests.
[  FAILED  ] 1 test, listed below:
[  FAILED  ] BinaryPatternConvolutionLayerTest/2.TestSetupErrors, where TypeParam = caffe::GPUDevice<float>
"""


def test_host_side_reads_gtest_logs(repo_root, tmp_path):
    """gtest-summary: tests by group (cuDNN by suite name or type parameter,
    NCCL, GPU), failures, a binary that stopped; the committed log of the
    first GPU check (no cuDNN then) fails --expect cuDNN."""
    r = device_check.gtest_summary(GTEST_LOG)
    assert r["passed"] == 6 and r["finished"]
    assert r["failed"] == ["BinaryPatternConvolutionLayerTest/2.TestSetupErrors"]
    assert r["groups"] == {"cuDNN": [3, 3], "NCCL": [2, 2], "GPU": [3, 4]}
    log = tmp_path / "gtest.log"
    log.write_text(GTEST_LOG)
    res = _check("gtest-summary", str(log), "--expect", "cuDNN", "NCCL")
    assert res.returncode == 2
    assert res.stdout.startswith("7 tests, 6 passed, 1 failed; cuDNN: 3/3 passed; NCCL: 2/2")
    assert "failed: BinaryPatternConvolutionLayerTest/2.TestSetupErrors" in res.stderr
    log.write_text(GTEST_LOG.replace("[  FAILED  ] BinaryPatternConvolutionLayerTest/2"
                                     ".TestSetupErrors, where TypeParam = caffe::GPUDevice"
                                     "<float> (46 ms)", "")
                   .split("[==========] 7 tests")[0])
    res = _check("gtest-summary", str(log), "--expect", "GPU")
    assert res.returncode == 2 and "stopped before the end" in res.stderr
    old = os.path.join(repo_root, "logs", "device-check", "gtest_setup_errors_rerun.log")
    res = _check("gtest-summary", old, "--expect", "GPU")
    assert res.returncode == 0 and res.stdout.startswith("4 tests, 4 passed, 0 failed")
    res = _check("gtest-summary", old, "--expect", "cuDNN")
    assert res.returncode == 2 and "no cuDNN tests ran" in res.stderr
    res = _check("gtest-summary", old, "--expect", "TPU")
    assert res.returncode == 2 and "unknown group TPU" in res.stderr


def test_env_names_the_nvidia_library_folders():
    """nvidia-lib-path: the lib folders the bundle's env.sh puts on
    LD_LIBRARY_PATH (cuBLAS/cuRAND, cuDNN, NCCL wheels), exit 1 if none."""
    import sys
    from sepnets.caffeio import env
    dirs = env.nvidia_lib_dirs()
    assert all(os.path.isdir(d) and d.endswith(os.sep + "lib") for d in dirs)
    res = subprocess.run([sys.executable, "-m", "sepnets.caffeio.env", "nvidia-lib-path"],
                         capture_output=True, text=True)
    assert res.returncode == (0 if dirs else 1)
    assert res.stdout.strip() == ":".join(dirs)
    res = subprocess.run([sys.executable, "-m", "sepnets.caffeio.env", "bogus"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "nvidia-lib-path" in res.stderr
