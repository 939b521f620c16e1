"""--sweep on a tiny trained CIFAR net and real validation images: every number
of the table is the accuracy the written model really has, and the kept
scale is the best of them."""
import numpy as np
import pytest

from test_quant_fixture_net import BATCH, trained_cifar

BATCHES = 4
OFFSETS = "0.02:0.09:0.01"


@pytest.fixture(scope="session")
def cifar(tmp_path_factory, shared_dir, caffe):
    return trained_cifar(tmp_path_factory, shared_dir, caffe)


def quant(argv):
    from sepnets.binarize import main
    from sepnets.cli import run
    return run(main, [str(a) for a in argv])


def accuracy_loss(caffe, prototxt, model, batches=BATCHES):
    """Independent check: a fresh pycaffe TEST net over the first batches."""
    net = caffe.Net(str(prototxt), caffe.TEST, weights=str(model))
    out = []
    for _ in range(batches):
        o = net.forward()  # views of the net's blobs: read them now
        out.append((float(o["accuracy"]), float(o["loss"])))
    return tuple(float(v) for v in np.mean(out, axis=0))


def test_parse_sweep():
    from sepnets.binarize import parse_sweep
    assert parse_sweep(OFFSETS) == [0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09]
    assert parse_sweep("0.05:0.05:0.01") == [0.05]


def test_sweep_table_is_real_and_keeps_the_best(cifar, caffe, tmp_path, capsys):
    from sepnets.binarize import MEAN, parse_sweep, sweep
    from sepnets.model_size import model_arrays, read_caffemodel, read_prototxt
    net = read_prototxt(cifar["prototxt"])
    arrays = model_arrays(net, read_caffemodel(cifar["model"]), cifar["prototxt"], cifar["model"])
    rows, best, blob, images = sweep(net, cifar["prototxt"], arrays, cifar["model"], ["conv2"],
                                     parse_sweep(OFFSETS), BATCHES)
    assert blob == "accuracy" and images == BATCHES * BATCH
    assert [r[1] for r in rows] == [None, MEAN] + parse_sweep(OFFSETS)

    # every row equals what a fresh net measures on the model quant_pattern writes
    full = accuracy_loss(caffe, cifar["prototxt"], cifar["model"])
    assert rows[0][2:] == pytest.approx(full, abs=1e-6)
    for label, scale, acc, loss in rows[1:]:
        out = tmp_path / f"cand_{label.split()[-1]}"
        how = ["--scale", "mean"] if scale == MEAN else ["--offset", scale]
        assert quant(["--model", cifar["model"], "--prototxt", cifar["prototxt"],
                      "--layers", "conv2", "-o", out] + how) == 0
        got = accuracy_loss(caffe, f"{out}.prototxt", f"{out}.caffemodel")
        assert (acc, loss) == pytest.approx(got, abs=1e-5), label
    # the candidates differ, so the choice means something
    assert len({round(r[2], 4) for r in rows[1:]}) > 2
    best_row = next(r for r in rows[1:] if r[1] == best)
    assert best_row[2] == max(r[2] for r in rows[1:])
    assert best_row[3] == min(r[3] for r in rows[1:] if r[2] == best_row[2])

    # the command prints the table and writes the best candidate
    out = tmp_path / "best"
    assert quant(["--model", cifar["model"], "--prototxt", cifar["prototxt"], "--layers",
                  "conv2", "--sweep", OFFSETS, "--batches", BATCHES, "-o", out]) == 0
    printed = capsys.readouterr().out
    print(printed)
    assert "<- best" in printed and "full precision" in printed and "offset 0.09" in printed
    ref = tmp_path / f"cand_{best_row[0].split()[-1]}.caffemodel"
    assert open(f"{out}.caffemodel", "rb").read() == open(ref, "rb").read()


def test_sweep_needs_validation_data(cifar, capsys, tmp_path):
    from google.protobuf import text_format
    from sepnets.model_size import read_prototxt, with_input_layers
    deploy = tmp_path / "deploy.prototxt"
    net = with_input_layers(read_prototxt(cifar["prototxt"]), "TEST", cifar["prototxt"])
    deploy.write_text(text_format.MessageToString(net))
    assert quant(["--model", cifar["model"], "--prototxt", cifar["prototxt"], "--sweep",
                  OFFSETS, "--val-prototxt", deploy, "-o", tmp_path / "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "reads no data" in err and "deploy.prototxt" in err
    missing = tmp_path / "missing_data.prototxt"
    missing.write_text(open(cifar["prototxt"]).read().replace(cifar["val_lmdb"],
                                                               str(tmp_path / "nowhere")))
    assert quant(["--model", cifar["model"], "--prototxt", cifar["prototxt"], "--sweep",
                  OFFSETS, "--val-prototxt", missing, "-o", tmp_path / "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing_data.prototxt" in err, err
    assert not list(tmp_path.glob("x.*"))
