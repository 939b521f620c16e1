"""model_summary: the precision rules on a trained tiny CIFAR net (expected
sizes recomputed here from pycaffe's blob shapes), the command's table, the
generated nets beside the paper's sizes, and one-line errors."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest


MB = 10 ** 6


@pytest.fixture(scope="module")
def variants(cifar, tmp_path_factory):
    """Pattern models of the fixture: MEAN (BinaryPatternConvolution) and the
    release's +/-0.06 in stock Convolutions."""
    from conftest import tool_main
    main = tool_main("quant_pattern")
    d = tmp_path_factory.mktemp("size")
    out = {}
    for name, how in (("mean", ["--scale", "mean"]), ("offset", ["--offset", "0.06"])):
        assert main(["--model", cifar["model"], "--prototxt", cifar["prototxt"], "--filter",
                     "3x3", "5x5", "-o", str(d / name)] + how) == 0
        out[name] = (str(d / f"{name}.prototxt"), str(d / f"{name}.caffemodel"))
    return out


def expected_bytes(caffe, prototxt, model, binary, bq):
    """Bytes by the rules, from the shapes pycaffe reports: binarized weights
    1 bit + fp32 alpha per filter (alpha blob if the layer has one), BQ 1x1/FC
    weights 1 byte + 5, everything else 4 bytes; whole bytes per blob."""
    net = caffe.Net(prototxt, caffe.TEST, weights=model)
    types = dict(zip(net._layer_names, (layer.type for layer in net.layers)))
    total = 0
    for name, blobs in net.params.items():
        w = blobs[0].data
        for i, b in enumerate(blobs):
            n = b.data.size
            if i == 0 and name in binary:
                has_alpha = types[name] == "BinaryPatternConvolution"
                total += -(-n // 8) + (0 if has_alpha else 4 * w.shape[0])
            elif i == 0 and bq and (types[name] == "InnerProduct" or w.shape[2:] == (1, 1)):
                total += n + 5
            else:
                total += 4 * n
    return total, 4 * sum(b.data.size for blobs in net.params.values() for b in blobs)


@pytest.mark.parametrize("variant", ["mean", "offset"])
@pytest.mark.parametrize("bq", [False, True])
def test_sizes_follow_the_rules(caffe, variants, variant, bq):
    from sepnets.compress.sizes import summarize
    prototxt, model = variants[variant]
    s = summarize(prototxt, model, bq=bq)
    want, fp32 = expected_bytes(caffe, prototxt, model, {"conv1", "conv2", "conv3"}, bq)
    assert s.nbytes == want
    assert s.fp32_bytes == fp32
    assert s.ratio == pytest.approx(fp32 / want)
    by = s.params_by_precision()
    assert by["1-bit"] == 3 * 3 * 3 * 16 + 5 * 5 * 16 * 32 + 3 * 3 * 32 * 32
    assert by["8-bit"] == (32 * 32 + 2048 * 32 + 32 * 10 if bq else 0)
    assert sum(by.values()) == s.params == fp32 // 4


def test_full_precision_model_and_prototxt_alone(cifar, caffe, variants):
    """Without a caffemodel the shapes come from the net (data shape read from
    its LMDB) and stock Convolutions are fp32, unless named with --baked."""
    from sepnets.compress.sizes import summarize
    full = summarize(cifar["prototxt"], cifar["model"])
    alone = summarize(cifar["prototxt"])
    assert [(lay.name, lay.nbytes) for lay in full.layers] == \
        [(lay.name, lay.nbytes) for lay in alone.layers]
    assert full.nbytes == full.fp32_bytes == expected_bytes(
        caffe, cifar["prototxt"], cifar["model"], set(), False)[0]
    prototxt, model = variants["offset"]
    assert summarize(prototxt).nbytes == full.nbytes  # types alone: all fp32
    baked = summarize(prototxt, baked=("conv1", "conv2", "conv3"))
    assert baked.nbytes == summarize(prototxt, model).nbytes < full.nbytes
    mean_proto, _ = variants["mean"]
    assert summarize(mean_proto).nbytes == summarize(*variants["mean"]).nbytes


def test_command_prints_table_and_totals(variants, capsys):
    from conftest import tool_main
    main = tool_main("model_summary")
    assert main(list(variants["mean"])) == 0
    out = capsys.readouterr().out
    for needle in ("conv2", "BinaryPatternConvolution", "5x5", "1-bit", "fc5", "8-bit params",
                   "Model size as stored", "Model size if all fp32", "Compression ratio"):
        assert needle in out, needle
    assert main(list(variants["mean"]) + ["--bq", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["bytes"] < d["fp32_bytes"] and d["params_by_precision"]["8-bit"] > 0
    assert d["size_mb"] == pytest.approx(d["bytes"] / MB)


def test_bad_inputs_are_one_clear_line(cifar, variants, repo_root, tmp_path):
    tool = os.path.join(repo_root, "tools", "model_summary.py")
    wrong = tmp_path / "wrong.prototxt"
    wrong.write_text(open(cifar["prototxt"]).read().replace("num_output: 10", "num_output: 100"))
    cases = [([str(wrong), cifar["model"]], "do not match"),
             ([cifar["model"]], "not a text prototxt"),
             ([cifar["prototxt"], cifar["prototxt"]], "not a Caffe model"),
             ([str(tmp_path / "absent.prototxt")], "not found")]
    for argv, needle in cases:
        r = subprocess.run([sys.executable, tool] + argv, capture_output=True, text=True)
        assert r.returncode == 2, argv
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
        assert needle in r.stderr, r.stderr


def test_baked_binary_detection():
    from sepnets.compress.sizes import is_baked_binary
    w = np.where(np.random.default_rng(0).standard_normal((4, 3, 3, 3)) > 0, 0.5, -0.5)
    w[1] *= 3
    assert is_baked_binary(w)
    w[2, 0, 0, 0] = 0.25
    assert not is_baked_binary(w)
    assert not is_baked_binary(np.ones((8, 1, 1, 1)))  # 1-entry filters are no patterns


# ------------------------------------------------- generated nets vs the paper

@pytest.fixture(scope="module")
def catalog_rows():
    pytest.importorskip("sepnets.netgen.catalog", reason="network generators not present")
    from sepnets.compress.model_summary import catalog_summaries
    return {row: (entry, s) for row, entry, s in catalog_summaries()}


def test_every_generated_net_has_a_size(catalog_rows):
    from sepnets.netgen.catalog import catalog
    assert {e.name for e in catalog()} <= set(catalog_rows)
    for row, (entry, s) in catalog_rows.items():
        if entry.kind == "full":
            assert s.nbytes == s.fp32_bytes, row
        else:  # pattern nets (and their fix-pattern twins) store 1-bit weights
            assert 0 < s.nbytes < s.fp32_bytes and s.params_by_precision()["1-bit"] > 0, row


@pytest.mark.parametrize("row,paper", [("sepnet-r", 5.2), ("mobilenet-0.5", 5.2),
                                       ("squeezenet", 4.8)])
def test_full_precision_sizes_match_the_paper(catalog_rows, row, paper):
    """Full-precision nets: 4 bytes per parameter, so the size follows the
    parameter count (1.3 M, 1.3 M, 1.25 M) within 5%."""
    mb = catalog_rows[row][1].nbytes / MB
    print(f"{row}: {mb:.2f} MB (paper {paper} MB)")
    assert mb == pytest.approx(paper, rel=0.05)


def test_sepnet_b_and_bq_sizes_follow_from_sepnet_r(catalog_rows):
    """SEP-Net-B/BQ store SEP-Net-R's parameters at the rules' precisions:
    B = R - (4 - 1/8) bytes per binarized weight (+ alpha); BQ also stores
    1x1/FC weights in one byte. Printed beside the paper's 4.2 and 1.3 MB."""
    r, b, bq = (catalog_rows[k][1] for k in ("sepnet-r", "sepnet-b", "sepnet-bq"))
    nbin = b.params_by_precision()["1-bit"]
    assert nbin > 0
    alpha_blobs = sum(lay.blobs[-1].count for lay in b.layers
                      if lay.type == "BinaryPatternConvolution" and lay.blobs[-1].role == "alpha")
    binary_layers = [lay for lay in b.layers if lay.precision == "1-bit"]
    packed_bits = sum(-(-lay.blobs[0].count // 8) for lay in binary_layers)
    assert b.nbytes == r.nbytes - 4 * nbin + packed_bits + 4 * alpha_blobs
    n8 = bq.params_by_precision()["8-bit"]
    n8_tensors = sum(1 for lay in bq.layers if lay.precision == "8-bit")
    assert bq.nbytes == b.nbytes - 3 * n8 + 5 * n8_tensors
    print(f"SEP-Net-B {b.nbytes / MB:.2f} MB (paper 4.2), SEP-Net-BQ {bq.nbytes / MB:.2f} MB "
          f"(paper 1.3); binarized weights {nbin:,} of {r.params:,}")


def test_size_table_counts_parameters_like_the_network_table(catalog_rows):
    """One parameter counter: the size table's Params column and
    ``gen_prototxt.py --summary``'s count agree for every generated net
    (BatchNorm's running statistics are stored and priced, not counted as
    parameters), while the bytes still include those statistics."""
    from sepnets import REPO_ROOT
    from sepnets.netgen import params
    from sepnets.netgen.catalog import catalog
    for e in catalog():
        s = catalog_rows[e.name][1]
        want = params.count(os.path.join(REPO_ROOT, e.deploy))
        assert s.counts["total"] == want["total"], e.name
        assert s.params == want["total"] + want["bn_stats"], e.name
