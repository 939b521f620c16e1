"""The runner on the small-network comparison's experiments (issue 19), with
the real caffe binary, a few hundred real CIFAR-10 images and tiny iteration
counts: SEP-Net through every step including step 5 (BQ), and a baseline
that has only a full-precision net (step 1 alone)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

TINY = ["--iters", "4", "--finetune-iters", "2", "--batch", "4", "--snapshot", "2",
        "--test-interval", "2", "--test-iter", "1", "--display", "1", "--bn-recalibrate", "1"]


def _run(repo_root, data, tmp, *argv):
    return subprocess.run([sys.executable, os.path.join(repo_root, "tools", "run_experiment.py"),
                           *argv, *TINY, "--data", str(data), "--runs-dir", str(tmp / "runs"),
                           "--logs-dir", str(tmp / "logs")],
                          capture_output=True, text=True, timeout=900)


SEPNET = ("cifar10-sepnet", "--ste", "--ste-iters", "2", "--ste-lr-mult", "20", "--sweep", "none")


@pytest.fixture(scope="module")
def sepnet_run(repo_root, tiny_cifar, tmp_path_factory):
    """Run to the end of step 1 (--until 1b_full_bn), then the rest."""
    tmp = tmp_path_factory.mktemp("small_sepnet")
    first = _run(repo_root, tiny_cifar, tmp, *SEPNET, "--until", "1b_full_bn")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    logs = tmp / "logs" / "cifar10-sepnet"
    until = dict(logs=sorted(p.name for p in logs.glob("*.log")),
                 state=json.loads((tmp / "runs" / "cifar10-sepnet" / "state.json").read_text()),
                 out=first.stdout)
    res = _run(repo_root, tiny_cifar, tmp, *SEPNET)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return tmp / "runs" / "cifar10-sepnet", logs, res, until


def test_until_stops_after_the_step_and_the_rest_continues(sepnet_run):
    _, _, res, until = sepnet_run
    assert until["logs"] == ["1_full.log", "1b_full_bn.log"]
    assert "stopped after 1b_full_bn (--until)" in until["out"]
    assert not until["state"].get("finished")
    assert "[1_full] done earlier" in res.stdout and "[1b_full_bn] done earlier" in res.stdout


def test_bq_step_packs_the_best_pattern_model_and_tests_it(sepnet_run):
    from sepnets.caffeio.log import parse_log
    from sepnets.pipeline.bq import SOURCES
    runs, logs, _, _ = sepnet_run
    state = json.loads((runs / "state.json").read_text())
    st = state["steps"]["5_bq"]
    assert st["done"] and st["source"] in SOURCES
    # the source has the best top-1 of the pattern models (ties: the earlier step)
    tops = {s: parse_log(str(logs / f"{s}.log")).accuracy().top1 for s in SOURCES}
    best = max(tops.values())
    assert tops[st["source"]] == best
    assert st["source"] == next(s for s in SOURCES if tops[s] == best)
    packed = runs / "5_bq" / "bq.sepnet"
    assert packed.stat().st_size == st["packed_bytes"]
    bq = parse_log(str(logs / "5_bq.log"))
    assert bq.kind == "test" and bq.evaluation.complete
    assert bq.accuracy().top1 == st["top1"]
    meta = json.loads((logs / "experiment.json").read_text())
    assert meta["bq_from"] == st["source"] and meta["bq_bytes"] == st["packed_bytes"]
    assert "| BQ |" in (logs / "results.md").read_text()


def test_bq_model_has_8_bit_1x1_and_fc_and_1_bit_patterns(sepnet_run, caffe):
    """The tested model is the packed file: every 1x1/FC weight tensor holds at
    most 256 values within half a step of the source's, pattern filters two."""
    from sepnets.caffeio.blobs import model_arrays
    from sepnets.caffeio.proto import read_caffemodel, read_prototxt
    runs, _, _, _ = sepnet_run
    st = json.loads((runs / "state.json").read_text())["steps"]["5_bq"]
    net_path = str(runs / "5_bq" / "net.prototxt")
    net = read_prototxt(net_path)
    from sepnets.caffeio.run import from_caffe_path
    src_path = from_caffe_path(st["source_model"])
    src = model_arrays(net, read_caffemodel(src_path), net_path, src_path)
    got = model_arrays(net, read_caffemodel(str(runs / "5_bq" / "bq.caffemodel")), net_path,
                       "bq.caffemodel")
    layers = {lp.name: lp for lp in net.layer}
    n8 = n1 = 0
    for name, arrays in got.items():
        w, w0 = arrays[0], src[name][0]
        lp = layers[name]
        if lp.type == "InnerProduct" or (lp.type == "Convolution" and w.shape[2:] == (1, 1)):
            values = np.unique(w)
            assert len(values) <= 256, name
            step = (max(w0.max(), 0) - min(w0.min(), 0)) / 255
            assert np.abs(w - w0).max() <= step / 2 + 1e-6, name
            n8 += 1
        elif lp.type == "BinaryPatternConvolution":
            for f in w.reshape(w.shape[0], -1):
                assert len(np.unique(np.abs(f))) == 1, name
            n1 += 1
    assert n8 > 10 and n1 > 10


def test_bq_size_is_what_model_summary_computes(sepnet_run, repo_root):
    """The packed file is the size the tables report, up to the file's framing."""
    from sepnets.compress.pack_model import framing_bytes
    from sepnets.compress.sizes import summarize
    from sepnets.netgen.catalog import by_name
    runs, _, _, _ = sepnet_run
    data = (runs / "5_bq" / "bq.sepnet").read_bytes()
    computed = summarize(os.path.join(repo_root, by_name()["cifar10-sepnet-bq"].deploy),
                         bq=True).nbytes
    assert computed <= len(data) <= computed + framing_bytes(data, "bq.sepnet")


def test_ste_step_keeps_the_sign_flips_of_the_pattern_layers(sepnet_run):
    """Step 4 leaves the share of pattern signs STE changed beside its logs:
    the full model against the STE model, counted over the net's binary layers
    (recounted here from the two models)."""
    from sepnets.caffeio.proto import read_caffemodel
    from sepnets.caffeio.run import from_caffe_path
    from sepnets.compress.compare_patterns import RECORD, read_record
    runs, logs, res, _ = sepnet_run
    rec = read_record(str(logs / RECORD))
    assert "[4_ste] signs STE changed:" in res.stdout
    full = read_caffemodel(from_caffe_path(rec["model_a"]))
    ste = read_caffemodel(from_caffe_path(rec["model_b"]))
    assert "4_ste" in rec["model_b"] and "1_full" in rec["model_a"]
    bpc = {lp.name for lp in ste.layer if lp.type == "BinaryPatternConvolution"}
    assert rec["binary_layers"] == len(bpc) > 10
    blob = {lp.name: np.array(lp.blobs[0].data) for m in (full,) for lp in m.layer
            if lp.name in bpc}
    n = f = 0
    for lp in ste.layer:
        if lp.name in bpc:
            w = np.array(lp.blobs[0].data)
            n += w.size
            f += int(np.count_nonzero((w >= 0) != (blob[lp.name] >= 0)))
    assert (rec["binary_weights"], rec["binary_flipped"]) == (n, f)
    assert rec["binary_fraction"] == pytest.approx(f / n)


def test_rerun_redoes_nothing(sepnet_run, repo_root, tiny_cifar):
    runs, logs, _, _ = sepnet_run
    before = (logs / "5_bq.log").stat().st_mtime_ns
    res = _run(repo_root, tiny_cifar, runs.parent.parent, "cifar10-sepnet", "--ste",
               "--ste-iters", "2", "--ste-lr-mult", "20", "--sweep", "none")
    assert res.returncode == 0, res.stderr
    assert "[5_bq] done earlier" in res.stdout
    assert (logs / "5_bq.log").stat().st_mtime_ns == before


def test_baseline_experiment_runs_step_1_alone(repo_root, tiny_cifar, tmp_path):
    res = _run(repo_root, tiny_cifar, tmp_path, "cifar10-mobilenet")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    logs = tmp_path / "logs" / "cifar10-mobilenet"
    assert sorted(p.name for p in logs.glob("*.log")) == ["1_full.log", "1b_full_bn.log"]
    state = json.loads((tmp_path / "runs" / "cifar10-mobilenet" / "state.json").read_text())
    assert set(state["steps"]) == {"1_full", "1b_full_bn"} and state.get("finished")
    table = (logs / "results.md").read_text()
    assert "MobileNet 0.5" in table and "BiPattern" in table


def test_best_pattern_model_rule():
    """One rule picks the best pattern model for step 5 and for the depth
    table's gap: the best finite top-1, ties to the earlier step."""
    from sepnets.pipeline.bq import best_of
    nan = float("nan")
    assert best_of([0.80, 0.83, 0.83, 0.82]) == 1
    assert best_of([None, nan, 0.5, 0.6]) == 3
    assert best_of([0.7, None, nan, 0.7]) == 0
    assert best_of([None, nan]) is None and best_of([]) is None
