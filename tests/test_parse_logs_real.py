"""The log parser, the result table and the plots on real logs of the Caffe
this project built: a tiny two-head net (GoogLeNet-style output names) goes
through the three steps (train, binarize + ``caffe test``, fine-tune with the
project's BinaryPatternConvolution layer), with a training run killed and
resumed from a snapshot. The parsed numbers are checked against pycaffe
forward passes on the same weights and data, not against stored values."""
import math
import os
import subprocess
import time

import numpy as np
import pytest

from sepnets.caffeio import log as caffe_log
from sepnets.report import plot_logs as plots, results

N_CLASSES, BATCH, TEST_BATCHES = 10, 20, 5
SHAPE = (3, 8, 8)


def _lmdb(caffe, path, n, seed):
    """Gaussian images whose class shifts the mean of a few pixels: learnable
    in a few iterations, not trivially."""
    import lmdb
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(0).standard_normal((N_CLASSES,) + SHAPE) * 0.3
    env = lmdb.open(str(path), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for i in range(n):
            label = int(rng.integers(N_CLASSES))
            x = (centers[label] + rng.standard_normal(SHAPE)).astype(np.float32)
            datum = caffe.io.array_to_datum(x, label)
            txn.put(f"{i:08d}".encode(), datum.SerializeToString())
    env.close()


def _net(caffe, train_db, test_db, pattern=None):
    """Two heads named like GoogLeNet's (loss1/..., loss3/...); conv2 is the
    k x k layer that steps 2 and 3 binarize (pattern = dict of binary_pattern_param)."""
    from caffe import layers as L, params as P
    n = caffe.NetSpec()
    n.data, n.label = L.Data(source=str(train_db), backend=P.Data.LMDB, batch_size=BATCH,
                             ntop=2, include=dict(phase=caffe.TRAIN))
    train = n.to_proto()
    n = caffe.NetSpec()
    n.data, n.label = L.Data(source=str(test_db), backend=P.Data.LMDB, batch_size=BATCH,
                             ntop=2, include=dict(phase=caffe.TEST))
    w = dict(weight_filler=dict(type="msra"), bias_filler=dict(type="constant"))
    n.conv1 = L.Convolution(n.data, num_output=8, kernel_size=1, **w)
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    n["loss1/fc"] = L.InnerProduct(n.conv1, num_output=N_CLASSES, **w)
    n["loss1/loss1"] = L.SoftmaxWithLoss(n["loss1/fc"], n.label, loss_weight=0.3)
    conv = dict(num_output=8, kernel_size=3, pad=1, **w)
    if pattern is None:
        n.conv2 = L.Convolution(n.conv1, **conv)
    else:
        n.conv2 = L.BinaryPatternConvolution(
            n.conv1, convolution_param=conv, binary_pattern_param=pattern,
            param=[dict(lr_mult=0, decay_mult=0), dict(lr_mult=1, decay_mult=0)])
    n.relu2 = L.ReLU(n.conv2, in_place=True)
    n["loss3/fc"] = L.InnerProduct(n.conv2, num_output=N_CLASSES, **w)
    n["loss3/loss3"] = L.SoftmaxWithLoss(n["loss3/fc"], n.label, loss_weight=1)
    for head in ("loss1", "loss3"):
        for k in (1, 5):
            n[f"{head}/top-{k}"] = L.Accuracy(n[f"{head}/fc"], n.label,
                                              accuracy_param=dict(top_k=k),
                                              include=dict(phase=caffe.TEST))
    proto = n.to_proto()
    train.layer.extend(proto.layer)
    return str(train)


def _solver(path, net, prefix, max_iter, base_lr=0.05):
    path.write_text(
        f'net: "{net}"\ntest_iter: {TEST_BATCHES}\ntest_interval: 10\n'
        f'base_lr: {base_lr}\nlr_policy: "step"\nstepsize: 15\ngamma: 0.1\n'
        f'momentum: 0.9\nweight_decay: 0.0005\ndisplay: 5\nmax_iter: {max_iter}\n'
        f'snapshot: 10\nsnapshot_prefix: "{prefix}"\nsolver_mode: CPU\nrandom_seed: 7\n')
    return path


def _caffe(caffe_bin, *args):
    """Run the caffe tool; return its glog output (stderr) as a log file holds it."""
    env = dict(os.environ, GLOG_logtostderr="1", GLOG_minloglevel="0")
    out = subprocess.run([caffe_bin, *map(str, args)], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stderr


def _cut_after(text, marker):
    """The log of a run killed while writing the line after `marker`."""
    i = text.index(marker)
    j = text.index("\n", i) + 1
    k = text.index("\n", j)
    return text[:(j + k) // 2]


@pytest.fixture(scope="module")
def runs(caffe, caffe_bin, tmp_path_factory):
    """Real logs of the three steps, a resumed step 1, and the weights used."""
    d = tmp_path_factory.mktemp("real_logs")
    _lmdb(caffe, d / "train_lmdb", 400, seed=1)
    _lmdb(caffe, d / "test_lmdb", BATCH * TEST_BATCHES, seed=2)
    full_net = d / "full.prototxt"
    full_net.write_text(_net(caffe, d / "train_lmdb", d / "test_lmdb"))
    snaps = d / "snaps"
    snaps.mkdir()
    solver = _solver(d / "full_solver.prototxt", full_net, snaps / "full", 40)
    exp = d / "logs" / "tiny-twohead"
    exp.mkdir(parents=True)
    r = dict(dir=d, exp=exp, full_net=full_net, solver=solver)

    t0 = time.time()
    r["run_a"] = _caffe(caffe_bin, "train", "--solver", solver)
    # killed during iteration 20..25 and resumed from the iteration-20 snapshot
    r["run_b"] = _caffe(caffe_bin, "train", "--solver", solver,
                        "--snapshot", snaps / "full_iter_20.solverstate")
    r["train_wall"] = time.time() - t0
    killed = _cut_after(r["run_a"], "] Iteration 25 (")
    (exp / "1_full.log").write_text(killed + "\n" + r["run_b"])
    r["killed"] = killed
    weights = snaps / "full_iter_40.caffemodel"
    r["weights"] = weights

    r["pattern_nets"] = {}
    for offset in ("0.05", "0.3"):
        net = d / f"pattern_{offset}.prototxt"
        net.write_text(_net(caffe, d / "train_lmdb", d / "test_lmdb",
                            pattern=dict(scale_mode=1, offset=float(offset))))
        r["pattern_nets"][offset] = net
        (exp / f"2_bipattern_offset{offset}.log").write_text(_caffe(
            caffe_bin, "test", "--model", net, "--weights", weights,
            "--iterations", TEST_BATCHES))
    fixed = d / "refine.prototxt"
    fixed.write_text(_net(caffe, d / "train_lmdb", d / "test_lmdb",
                          pattern=dict(scale_mode=1, offset=0.3, train_mode=0)))
    rsolver = _solver(d / "refine_solver.prototxt", fixed, snaps / "refine", 20,
                      base_lr=0.01)
    (exp / "3_refined.log").write_text(_caffe(caffe_bin, "train", "--solver", rsolver,
                                              "--weights", weights))
    r["refine_net"], r["refine_weights"] = fixed, snaps / "refine_iter_20.caffemodel"
    return r


def _forward_means(caffe, model, weights, batches=TEST_BATCHES):
    """Mean test outputs of `batches` forward passes, as caffe test computes them."""
    net = caffe.Net(str(model), str(weights), caffe.TEST)
    sums = {}
    for _ in range(batches):
        out = net.forward()
        for k, v in out.items():
            sums[k] = sums.get(k, 0.0) + float(v.reshape(-1)[0])
    return {k: v / batches for k, v in sums.items()}


def test_train_log_rows_and_learning_rate(runs):
    log = caffe_log.parse_text(runs["run_a"], "run_a")
    assert log.kind == "train" and log.complete and log.segments == 1
    assert [r["iteration"] for r in log.rows] == list(range(0, 41, 5))
    its, _, loss = log.series("loss")
    assert its == list(range(0, 41, 5)) and all(math.isfinite(v) and v > 0 for v in loss)
    # lr of the "step" policy: base_lr * gamma ^ floor(iter / stepsize)
    its, _, lr = log.series("lr")
    assert its == list(range(0, 40, 5))
    assert lr == pytest.approx([0.05 * 0.1 ** (i // 15) for i in its], rel=1e-5)
    its, _, _ = log.series("test:loss3/top-1")
    assert its == [0, 10, 20, 30, 40]
    assert log.test_names[0] == [f"{h}/{o}" for h in ("loss1", "loss3")
                                 for o in (h, "top-1", "top-5")]
    assert log.loss_weights == {"test:loss1/loss1": pytest.approx(0.3),
                                "test:loss3/loss3": 1.0,
                                "train:loss1/loss1": pytest.approx(0.3),
                                "train:loss3/loss3": 1.0}
    for r in log.rows:
        if "test:loss3/top-1" in r:
            assert 0 <= r["test:loss3/top-1"] <= r["test:loss3/top-5"] <= 1
    # the net learns: the last test beats the first
    assert log.rows[-1]["test:loss3/top-1"] > log.rows[0]["test:loss3/top-1"]
    assert [s for s, _ in log.snapshots] == [10, 20, 30, 40]


def test_final_test_matches_pycaffe(runs, caffe):
    log = caffe_log.parse_text(runs["run_b"], "run_b")
    it, final = log.last_value("test:loss3/loss3")
    assert it == 40
    expected = _forward_means(caffe, runs["full_net"], runs["weights"])
    for name, value in expected.items():
        assert log.rows[-1][f"test:{name}"] == pytest.approx(value, rel=2e-5, abs=1e-6), name
    acc = log.accuracy()
    assert (acc.top1_name, acc.top5_name) == ("loss3/top-1", "loss3/top-5")
    assert acc.top1 == pytest.approx(expected["loss3/top-1"], abs=1e-6)


def test_killed_and_resumed_log(runs):
    a = caffe_log.parse_text(runs["run_a"], "a")
    b = caffe_log.parse_text(runs["run_b"], "b")
    log = caffe_log.parse_log(str(runs["exp"] / "1_full.log"))
    assert log.segments == 2 and log.restarts == [20] and log.complete
    assert log.resumed_from == [str(runs["dir"] / "snaps" / "full_iter_20.solverstate")]
    assert [r["iteration"] for r in log.rows] == list(range(0, 41, 5))
    a_rows = {r["iteration"]: r for r in a.rows}
    b_rows = {r["iteration"]: r for r in b.rows}
    for r in log.rows:
        src = b_rows if r["iteration"] >= 20 else a_rows
        keys = set(r) - {"seconds"}
        assert {k: r[k] for k in keys} == {k: src[r["iteration"]][k] for k in keys}
    # seconds: the killed run's time, then the resumed run's, no gap counted
    secs = [r["seconds"] for r in log.rows]
    assert secs == sorted(secs)
    killed_secs = caffe_log.parse_text(runs["killed"] + "\n", "k").seconds
    assert log.seconds == pytest.approx(killed_secs + b.seconds, abs=0.05)
    assert log.seconds <= runs["train_wall"] + 0.05
    # the resumed run restored the same weights: its test at 20 repeats the first run's
    assert b_rows[20]["test:loss3/top-1"] == a_rows[20]["test:loss3/top-1"]


def test_killed_log_glued_to_resumed_run(runs):
    """Without a newline between the cut line and the resumed run's output."""
    glued = caffe_log.parse_text(runs["killed"] + runs["run_b"], "glued")
    clean = caffe_log.parse_log(str(runs["exp"] / "1_full.log"))
    def without_seconds(rows):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert without_seconds(glued.rows) == without_seconds(clean.rows)
    assert glued.seconds == pytest.approx(clean.seconds, abs=0.01)
    assert glued.restarts == [20] and glued.segments == 2
    assert any("cut line" in w for w in glued.warnings)


def test_truncated_log_is_incomplete(runs):
    log = caffe_log.parse_text(runs["killed"], "k")
    assert log.truncated and not log.complete
    assert log.last_iteration == 25
    acc = log.accuracy()
    assert acc.iteration == 20 and acc.top1 is not None


def test_caffe_test_log_matches_pycaffe(runs, caffe):
    for offset, net in runs["pattern_nets"].items():
        path = runs["exp"] / f"2_bipattern_offset{offset}.log"
        log = caffe_log.parse_log(str(path))
        assert log.kind == "test" and log.evaluation.complete
        ev = log.evaluation
        assert ev.batches == ev.iterations == TEST_BATCHES
        expected = _forward_means(caffe, net, runs["weights"])
        assert sorted(ev.outputs) == sorted(expected)
        for name, value in expected.items():
            assert ev.outputs[name] == pytest.approx(value, rel=2e-5, abs=1e-6), name
        assert ev.loss == pytest.approx(expected["loss1/loss1"] * 0.3 + expected["loss3/loss3"],
                                        rel=1e-4)
        assert ev.loss_weights == {"loss1/loss1": pytest.approx(0.3), "loss3/loss3": 1.0}
        # a test cut short: the means of the batches it logged, marked partial
        text = path.read_text()
        cut = text[:text.index("] Batch 3,")]
        cut = cut[:cut.rindex("\n") + 1]
        part = caffe_log.parse_text(cut, "cut").evaluation
        assert not part.complete and part.batches == 3


def test_experiment_table_and_plot(runs, caffe, tmp_path):
    import shutil
    exp_dir = tmp_path / "logs" / "tiny-twohead"
    shutil.copytree(runs["exp"], exp_dir)
    exp = results.load_experiment(str(exp_dir))
    full, bip, ref = (exp.results[k] for k in ("full", "bipattern", "refined"))
    expected = {o: _forward_means(caffe, n, runs["weights"])["loss3/top-1"]
                for o, n in runs["pattern_nets"].items()}
    best = max(expected, key=expected.get)
    assert bip.file == f"2_bipattern_offset{best}.log"
    assert bip.acc.top1 == pytest.approx(expected[best], abs=1e-6)
    refined = _forward_means(caffe, runs["refine_net"], runs["refine_weights"])
    assert ref.acc.top1 == pytest.approx(refined["loss3/top-1"], abs=1e-6)
    assert ref.acc.top5 == pytest.approx(refined["loss3/top-5"], abs=1e-6)
    assert ref.acc.iteration == 20 and full.acc.iteration == 40

    from conftest import tool_main
    parse_main = tool_main("parse_logs")
    assert parse_main([str(tmp_path / "logs"), "--quiet"]) == 0
    md = (exp_dir / "results.md").read_text()
    row = f"| tiny-twohead | Top 1 <br /> Top 5 | {full.acc.top1:.4f} <br /> {full.acc.top5:.4f} |"
    assert row in md
    assert row in (tmp_path / "logs" / "RESULTS.md").read_text()
    csv = (exp_dir / "csv" / "1_full.csv").read_text().splitlines()
    assert csv[0].startswith("iteration,seconds,loss,lr,train:loss1/loss1")
    assert len(csv) == 1 + 9
    assert (exp_dir / "csv" / "3_refined.csv").is_file()

    plot_main = tool_main("plot_logs")
    assert plot_main([str(tmp_path / "logs"), "--dpi", "60"]) == 0
    png = exp_dir / plots.FIGURE_NAME
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10000
    series, markers, (it0, _) = plots.curves(exp)
    assert it0 == 40 and series["refined"]["acc_it"][0] == 40
    assert [m["chosen"] for m in markers].count(True) == 1
