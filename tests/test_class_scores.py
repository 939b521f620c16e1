"""tools/eval_classes.py: per-class accuracy under Caffe's tie rule and strictly,
and dead class channels (what made CIFAR-10 SqueezeNet's top-5 sit at 0.78)."""
import numpy as np
import pytest

from conftest import one_line_error, run_tool


def test_tally_counts_ties_against_the_label_as_caffe_does():
    from sepnets.report.class_scores import tally
    # class 2 is dead (always 0); images 0-1 are class 2, 2-3 class 0
    s = np.array([[0.5, 0.0, 0.0, 0.2, 0.1, 0.3],
                  [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                  [0.9, 0.1, 0.0, 0.0, 0.0, 0.0],
                  [0.1, 0.2, 0.0, 0.3, 0.4, 0.5]])
    r = tally(s, [2, 2, 0, 0], ks=(1, 5))
    rows = {row.label: row for row in r.rows}
    assert rows[2].caffe == {1: 0.0, 5: 0.0}      # ties (0 >= 0) rank above the label
    assert rows[2].strict == {1: 0.5, 5: 1.0}     # image 0: 4 higher; image 1: none higher
    assert rows[0].caffe == {1: 0.5, 5: 1.0}      # image 3: four others score higher
    assert r.caffe == {1: 0.25, 5: 0.5} and r.strict == {1: 0.5, 5: 1.0}
    assert r.constant == {2: 0.0}
    assert sorted(rows) == [0, 2]


def test_tally_refuses_labels_outside_the_classes():
    from sepnets.report.class_scores import tally
    with pytest.raises(ValueError, match="labels outside 0..2"):
        tally(np.zeros((2, 3)), [0, 3])


def test_caffe_rule_matches_the_nets_accuracy_layer(cifar, caffe, capsys, tmp_path):
    """On a trained net the report's top-1 (Caffe's rule) is the Accuracy
    layer's own mean; with the last FC zeroed every class channel is dead and
    ties make Caffe's top-1 0 while the strict count takes every image."""
    from tiny_cifar_net import BATCH, evaluate
    batches = cifar["val_images"] // BATCH
    out = tmp_path / "classes.md"
    assert run_tool("eval_classes", [cifar["prototxt"], cifar["model"], "--batches", batches,
                                     "--out", out]) == 0
    text = out.read_text()
    assert text == capsys.readouterr().out
    want = evaluate(caffe, cifar["prototxt"], cifar["model"], batches)
    row = next(ln for ln in text.splitlines() if ln.startswith("| all |"))
    assert abs(float(row.split("|")[3]) - want) < 1e-4, (row, want)
    assert "No class channel has one value on every image." in text

    net = caffe.Net(cifar["prototxt"], caffe.TEST, weights=cifar["model"])
    for blob in net.params["fc6"]:
        blob.data[...] = 0
    dead = tmp_path / "dead.caffemodel"
    net.save(str(dead))
    from sepnets.report.class_scores import collect, tally
    r = tally(*collect(cifar["prototxt"], str(dead), batches)[:2])
    assert r.caffe[1] == 0.0 and r.strict[1] == 1.0
    assert sorted(r.constant) == list(range(10))


def test_bad_input_is_one_line(cifar, tmp_path):
    import subprocess
    import sys
    from sepnets import REPO_ROOT
    tool = f"{REPO_ROOT}/tools/eval_classes.py"
    res = subprocess.run([sys.executable, tool, cifar["prototxt"], str(tmp_path / "none.caffemodel")],
                         capture_output=True, text=True)
    one_line_error(res, "none.caffemodel", tool="eval_classes.py")
    res = subprocess.run([sys.executable, tool, cifar["prototxt"], cifar["model"], "--out",
                          cifar["model"]], capture_output=True, text=True)
    one_line_error(res, "would overwrite an input", tool="eval_classes.py")
