"""quant_pattern on a trained tiny CIFAR net: the binarized values, the
fine-tuning prototxt, untouched unselected layers, and one-line errors."""
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import run_tool


SELECTED = ("conv1", "conv2", "conv3")
UNSELECTED = ("bn3", "scale3", "conv4", "fc5", "fc6")


def quant(argv):
    return run_tool("quant_pattern", argv)


def params(caffe, prototxt, model):
    net = caffe.Net(str(prototxt), caffe.TEST, weights=str(model))
    return net, {k: [b.data.copy() for b in v] for k, v in net.params.items()}


def model_layers(path):
    from sepnets.caffeio.proto import read_caffemodel
    return {layer.name: layer for layer in read_caffemodel(str(path)).layer}


def net_layers(path):
    from sepnets.caffeio.proto import read_prototxt
    return {layer.name: layer for layer in read_prototxt(str(path)).layer}


@pytest.fixture(scope="module")
def mean_out(cifar, tmp_path_factory):
    out = tmp_path_factory.mktemp("quant") / "pat_mean"
    assert quant(["--model", cifar["model"], "--prototxt", cifar["prototxt"],
                  "--filter", "3x3", "5x5", "-o", out]) == 0
    return str(out) + ".prototxt", str(out) + ".caffemodel"


def test_mean_scale_gives_two_values_per_filter(cifar, caffe, mean_out):
    _, orig = params(caffe, cifar["prototxt"], cifar["model"])
    _, pat = params(caffe, *mean_out)
    for name in SELECTED:
        w0, w = orig[name][0], pat[name][0]
        alpha = np.abs(w0.reshape(len(w0), -1).astype(np.float64)).mean(1).astype(np.float32)
        flat = w.reshape(len(w), -1)
        for c in range(len(w)):
            assert set(np.unique(flat[c])) <= {alpha[c], -alpha[c]}
        np.testing.assert_array_equal(w >= 0, w0 >= 0)           # the patterns are sign(W)
        np.testing.assert_array_equal(pat[name][2], alpha)        # the alpha blob
        assert pat[name][1].tobytes() == orig[name][1].tobytes()  # bias unchanged
        assert len(pat[name]) == 3


def test_unselected_layers_are_bit_identical(cifar, mean_out):
    before, after = model_layers(cifar["model"]), model_layers(mean_out[1])
    for name in UNSELECTED:
        assert after[name] == before[name], name
    defs_before, defs_after = net_layers(cifar["prototxt"]), net_layers(mean_out[0])
    changed = {n for n in defs_before if defs_before[n] != defs_after[n]}
    assert changed == set(SELECTED)


def test_fine_tuning_prototxt(cifar, mean_out):
    from sepnets.caffeio.proto import caffe_pb2
    pb2 = caffe_pb2()
    defs = net_layers(mean_out[0])
    for name in SELECTED:
        layer = defs[name]
        assert layer.type == "BinaryPatternConvolution"
        bp = layer.binary_pattern_param
        assert bp.scale_mode == pb2.BinaryPatternParameter.MEAN
        assert bp.train_mode == pb2.BinaryPatternParameter.FIXED
        mults = [(p.lr_mult, p.decay_mult) for p in layer.param]
        assert mults == [(0, 0), (1, 1), (1, 0)]  # W frozen, bias as before, alpha learns


def test_pattern_layer_equals_baked_stock_convolution(cifar, caffe, mean_out):
    """The BinaryPatternConvolution net and the stock net holding the same +/-alpha
    weights compute the same outputs on the same real batch (up to float
    summation order: BLAS may sum the same products differently for the
    layer's own weight buffer)."""
    pat_net, pat = params(caffe, *mean_out)
    stock = caffe.Net(cifar["prototxt"], caffe.TEST)
    for name, blobs in pat.items():
        for dst, src in zip(stock.params[name], blobs):
            dst.data[...] = src
    pat_net.forward()
    stock.forward()
    a, b = pat_net.blobs["fc6"].data, stock.blobs["fc6"].data
    assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max()


def test_offset_release_variant(cifar, caffe, tmp_path):
    out = tmp_path / "q006"
    assert quant(["--model", cifar["model"], "--prototxt", cifar["prototxt"],
                  "--filter", "3x3", "5x5", "--offset", "0.06", "-o", out]) == 0
    _, orig = params(caffe, cifar["prototxt"], cifar["model"])
    stock_net, pat = params(caffe, f"{out}.prototxt", f"{out}.caffemodel")
    defs = net_layers(f"{out}.prototxt")
    x = np.float32(0.06)
    for name in SELECTED:
        assert defs[name].type == "Convolution"
        assert (defs[name].param[0].lr_mult, defs[name].param[0].decay_mult) == (0, 0)
        np.testing.assert_array_equal(pat[name][0], np.where(orig[name][0] >= 0, x, -x))
    for name in UNSELECTED:
        for a, b in zip(pat[name], orig[name]):
            assert a.tobytes() == b.tobytes()
    # --as-layer: the same binary model as BinaryPatternConvolution OFFSET
    out2 = tmp_path / "q006layer"
    assert quant(["--model", cifar["model"], "--prototxt", cifar["prototxt"],
                  "--filter", "3x3", "5x5", "--offset", "0.06", "--as-layer", "-o", out2]) == 0
    assert net_layers(f"{out2}.prototxt")["conv2"].binary_pattern_param.offset == \
        pytest.approx(0.06)
    layer_net, _ = params(caffe, f"{out2}.prototxt", f"{out2}.caffemodel")
    stock_net.forward()
    layer_net.forward()
    a, b = layer_net.blobs["fc6"].data, stock_net.blobs["fc6"].data
    assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max()


@pytest.mark.parametrize("argv,expect", [
    (["--layers", "conv2"], {"conv2"}),
    (["--filter", "3x3", "--skip", "conv1"], {"conv3"}),
    ([], {"conv1", "conv2", "conv3"}),          # default: every k x k, k > 1
    (["--layers", "conv4"], {"conv4"}),        # a 1x1 projection, on request
])
def test_selection(cifar, tmp_path, argv, expect):
    out = tmp_path / "sel"
    assert quant(["--model", cifar["model"], "--prototxt", cifar["prototxt"], "-o", out]
                 + argv) == 0
    defs = net_layers(f"{out}.prototxt")
    assert {n for n, layer in defs.items() if layer.type == "BinaryPatternConvolution"} == expect
    if "conv4" in expect:
        assert defs["conv4"].binary_pattern_param.allow_1x1


def test_prototxt_defaults_to_the_models_definition(cifar, caffe, tmp_path):
    out = tmp_path / "nodef"
    assert quant(["--models", cifar["model"], "--filter", "5x5", "-o", out]) == 0
    assert net_layers(f"{out}.prototxt")["conv2"].type == "BinaryPatternConvolution"
    net = caffe.Net(f"{out}.prototxt", caffe.TRAIN, weights=f"{out}.caffemodel")
    assert len(net.params["conv2"]) == 3


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, err
    return err


@pytest.mark.parametrize("argv,needles", [
    (["--layers", "conv9"], ["train_val.prototxt", "no layer named 'conv9'"]),
    (["--skip", "nope"], ["no layer named 'nope'"]),
    (["--filter", "7x7"], ["--filter 7x7 matches no Convolution", "3x3"]),
    (["--filter", "three"], ["--filter", "not a kernel size"]),
    (["--layers", "pool1"], ["'pool1' is Pooling"]),
    (["--offset", "-1"], ["--offset", "> 0"]),
    (["--sweep", "0.09:0.02:0.01"], ["--sweep"]),
    (["--as-layer"], ["--as-layer", "goes with --offset"]),
])
def test_bad_selection_is_one_clear_line(cifar, capsys, argv, needles):
    rc = quant(["--model", cifar["model"], "--prototxt", cifar["prototxt"], "-o",
                os.path.join(str(cifar["root"]), "never")] + argv)
    assert rc == 2
    _one_line_error(capsys, *needles)
    assert not os.path.exists(os.path.join(str(cifar["root"]), "never.caffemodel"))


def test_prototxt_model_mismatch(cifar, capsys, tmp_path):
    wrong = tmp_path / "wrong.prototxt"
    wrong.write_text(open(cifar["prototxt"]).read().replace("num_output: 32", "num_output: 24"))
    assert quant(["--model", cifar["model"], "--prototxt", wrong, "-o", tmp_path / "x"]) == 2
    _one_line_error(capsys, "trained.caffemodel", "do not match")
    renamed = tmp_path / "renamed.prototxt"
    renamed.write_text(open(cifar["prototxt"]).read().replace('"fc5"', '"fc5b"'))
    assert quant(["--model", cifar["model"], "--prototxt", renamed, "-o", tmp_path / "x"]) == 2
    _one_line_error(capsys, "no weights for layer 'fc5b'")
    assert quant(["--model", cifar["prototxt"], "--prototxt", cifar["prototxt"]]) == 2
    _one_line_error(capsys, "not a Caffe model")
    assert not list(tmp_path.glob("x.*"))


def test_never_overwrites_inputs(cifar, capsys):
    before = open(cifar["model"], "rb").read()
    stem = cifar["model"][: -len(".caffemodel")]
    assert quant(["--model", cifar["model"], "--prototxt", cifar["prototxt"], "-o", stem]) == 2
    _one_line_error(capsys, "overwrite an input")
    assert open(cifar["model"], "rb").read() == before


def test_command_line_entry_point(cifar, repo_root, tmp_path):
    tool = os.path.join(repo_root, "tools", "quant_pattern.py")
    ok = subprocess.run([sys.executable, tool, "--model", cifar["model"], "--prototxt",
                         cifar["prototxt"], "--filter", "3x3", "-o", str(tmp_path / "cli")],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "binarized 2 layer(s)" in ok.stdout and (tmp_path / "cli.caffemodel").exists()
    bad = subprocess.run([sys.executable, tool, "--model", cifar["model"], "--prototxt",
                          cifar["prototxt"], "--layers", "missing"], capture_output=True,
                         text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "Traceback" not in bad.stderr
    assert "no layer named 'missing'" in bad.stderr


@pytest.mark.parametrize("fail_at", ["write", "rename"])
def test_model_and_prototxt_land_together(cifar, capsys, tmp_path, monkeypatch, fail_at):
    """A failure after the caffemodel is written but before the prototxt is
    must leave the old pair as it was: a new model beside the old prototxt
    loads with the wrong layers. Simulated by failing the second file's
    temporary write, or the second rename."""
    from sepnets import fileio
    out = tmp_path / "pair"
    base = ["--model", cifar["model"], "--prototxt", cifar["prototxt"], "-o", out]
    assert quant(base + ["--filter", "3x3"]) == 0
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert sorted(before) == ["pair.caffemodel", "pair.prototxt"]
    calls = []
    if fail_at == "write":
        real = fileio._write_temp

        def second_fails(path, data):
            calls.append(path)
            if len(calls) == 2:
                raise OSError(28, "No space left on device")
            return real(path, data)
        monkeypatch.setattr(fileio, "_write_temp", second_fails)
    else:
        real = os.replace

        def second_fails(src, dst):
            calls.append(dst)
            if str(dst).endswith(".prototxt"):
                raise OSError(5, "Input/output error")
            return real(src, dst)
        monkeypatch.setattr(fileio.os, "replace", second_fails)
    with pytest.raises(OSError):
        quant(base + ["--filter", "3x3", "5x5", "--offset", "0.05"])
    # the write case stops at the prototxt's temporary; the rename case has
    # replaced the model, fails on the prototxt, then puts the old model back
    assert [os.path.basename(c) for c in calls] == (
        ["pair.caffemodel", "pair.prototxt"] if fail_at == "write"
        else ["pair.caffemodel", "pair.prototxt", "pair.caffemodel"])
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
