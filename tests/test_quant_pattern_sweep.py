"""--sweep on a tiny trained CIFAR net and real validation images: every number
of the table is the accuracy the written model really has, and the kept
scale is the best of them."""
import numpy as np
import pytest

from conftest import run_tool

from tiny_cifar_net import BATCH

BATCHES = 4
OFFSETS = "0.02:0.09:0.01"


def quant(argv):
    return run_tool("quant_pattern", argv)


def accuracy_loss(caffe, prototxt, model, batches=BATCHES):
    """Independent check: a fresh pycaffe TEST net over the first batches."""
    net = caffe.Net(str(prototxt), caffe.TEST, weights=str(model))
    out = []
    for _ in range(batches):
        o = net.forward()  # views of the net's blobs: read them now
        out.append((float(o["accuracy"]), float(o["loss"])))
    return tuple(float(v) for v in np.mean(out, axis=0))


def test_parse_sweep():
    from sepnets.compress.binarize import parse_sweep
    assert parse_sweep(OFFSETS) == [0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09]
    assert parse_sweep("0.05:0.05:0.01") == [0.05]


def test_sweep_table_is_real_and_keeps_the_best(cifar, caffe, tmp_path, capsys):
    from sepnets.compress.quant_pattern import MEAN, parse_sweep, sweep
    from sepnets.caffeio.blobs import model_arrays
    from sepnets.caffeio.proto import read_caffemodel, read_prototxt
    net = read_prototxt(cifar["prototxt"])
    arrays = model_arrays(net, read_caffemodel(cifar["model"]), cifar["prototxt"], cifar["model"])
    rows, best, blob, images, notes = sweep(net, cifar["prototxt"], arrays, cifar["model"],
                                            ["conv2"], parse_sweep(OFFSETS), BATCHES)
    assert blob == "accuracy" and images == BATCHES * BATCH
    assert notes == []          # the sweep reads the whole validation LMDB
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
    from sepnets.caffeio.proto import read_prototxt
    from sepnets.caffeio.pycaffe import with_input_layers
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


def test_sweep_on_part_of_a_class_ordered_set_sees_every_class(cifar, tmp_path):
    """On a validation LMDB stored class by class (like the CIFAR-10 test LMDB
    the data module writes) the first batch holds one class; the sweep's
    spread batch holds all of them."""
    import lmdb
    from sepnets.compress.quant_pattern import spread_validation
    from sepnets.caffeio.proto import caffe_pb2, read_prototxt

    pb2 = caffe_pb2()

    def records(path):
        with lmdb.open(path, readonly=True, lock=False) as env, env.begin() as txn:
            return [bytes(v) for _, v in txn.cursor()]

    def label(v):
        datum = pb2.Datum()
        datum.ParseFromString(v)
        return datum.label

    net = read_prototxt(cifar["prototxt"])
    data = next(layer for layer in net.layer
                if layer.type == "Data" and layer.include[0].phase == pb2.TEST)
    ordered = sorted(records(data.data_param.source), key=label)
    data.data_param.source = str(tmp_path / "ordered_lmdb")
    with lmdb.open(data.data_param.source, map_size=1 << 28) as env, \
            env.begin(write=True) as txn:
        for i, v in enumerate(ordered):
            txn.put(f"{i:08d}".encode(), v)
    assert len({label(v) for v in ordered[:BATCH]}) <= 3

    spread, notes = spread_validation(net, 1, str(tmp_path / "sweep"))
    source = next(layer.data_param.source for layer in spread.layer
                  if layer.type == "Data" and layer.include[0].phase == pb2.TEST)
    assert source != data.data_param.source and len(notes) == 1
    assert f"{BATCH} of the {len(ordered)} records" in notes[0]
    got = records(source)
    assert len(got) == BATCH and {label(v) for v in got} == {label(v) for v in ordered}
    assert spread_validation(net, len(ordered) // BATCH, str(tmp_path / "all"))[1] == []
