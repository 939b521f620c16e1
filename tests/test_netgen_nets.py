"""Every generated net runs in the built Caffe: each deploy net forward and
backward on a random batch of 2, and the small train_val nets (with their Data
layers swapped for an Input layer) through a training step's forward/backward."""
import os

import numpy as np
import pytest
from google.protobuf import text_format

from sepnets.netgen import catalog as cat

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENTRIES = cat.catalog()
DEPLOYS = sorted({e.deploy: e for e in ENTRIES if e.kind != "fix-pattern"}.items())


def _prepare(caffe, rel, tmp_path, edit=None):
    """The net of `rel`, edited; deploy nets (edit None) get force_backward
    (train_val nets must not: Caffe's Accuracy layer has no backward)."""
    net = caffe.proto.caffe_pb2.NetParameter()
    with open(os.path.join(REPO, rel)) as f:
        text_format.Merge(f.read(), net)
    net.force_backward = edit is None
    if edit:
        net = edit(net)
    path = tmp_path / "net.prototxt"
    path.write_text(text_format.MessageToString(net))
    return net, str(path)


def _pattern_check(net, entry):
    """Pattern layers: W gets no gradient, MEAN alphas are bound and learn."""
    for name in entry.pattern_layers:
        blobs = net.params[name]
        assert not blobs[0].diff.any(), f"{name}: W got a gradient in FIXED mode"
        if entry.scale_mode == "MEAN":
            w, alpha = blobs[0].data, blobs[-1].data
            np.testing.assert_allclose(alpha, np.abs(w).reshape(len(alpha), -1).mean(1),
                                       rtol=1e-4)
            assert np.abs(blobs[-1].diff).sum() > 0, f"{name}: alpha got no gradient"


@pytest.mark.parametrize("rel, entry", DEPLOYS, ids=[e.name for _, e in DEPLOYS])
def test_deploy_forward_backward(caffe, rel, entry, tmp_path):
    _, path = _prepare(caffe, rel, tmp_path)
    net = caffe.Net(path, caffe.TEST)
    shape = (2, *entry.input_shape)
    net.blobs["data"].reshape(*shape)
    net.reshape()
    for name, layer in zip(net._layer_names, net.layers):
        if layer.type == "BatchNorm":      # a deploy net needs trained statistics
            blobs = net.params[name]
            blobs[0].data[...], blobs[1].data[...], blobs[2].data[...] = 0.0, 1.0, 1.0
    rng = np.random.default_rng(0)
    net.blobs["data"].data[...] = rng.normal(0, 50, shape)
    prob = net.forward()["prob"].reshape(2, -1)
    n_classes = 10 if entry.dataset == "cifar10" else 1000
    assert prob.shape == (2, n_classes)
    assert np.isfinite(prob).all()
    np.testing.assert_allclose(prob.sum(1), 1.0, rtol=1e-4)
    # backward from the scores: a saturated softmax would pass back zeros
    score = net.bottom_names["prob"][0]
    producer = [n for n in net._layer_names if score in net.top_names[n]][-1]
    net.blobs[score].diff[...] = rng.normal(0, 1, net.blobs[score].diff.shape)
    net.backward(start=producer)
    grad = net.blobs["data"].diff
    assert np.isfinite(grad).all() and np.abs(grad).sum() > 0
    first = next(n for n, layer in zip(net._layer_names, net.layers) if len(layer.blobs))
    assert np.abs(net.params[first][0].diff).sum() > 0 or first in entry.pattern_layers
    _pattern_check(net, entry)


def _inputs_for_data(caffe, entry):
    def edit(net):
        layers = [lp for lp in net.layer if lp.type != "Data"]
        del net.layer[:]
        inp = net.layer.add(name="data", type="Input", top=["data", "label"])
        inp.input_param.shape.add(dim=[2, *entry.input_shape])
        inp.input_param.shape.add(dim=[2])
        net.layer.extend(layers)
        return net
    return edit


# The train_vals add to the deploy nets only the Data layers, the TRAIN-phase
# BatchNorm, the losses and accuracies, and GoogLeNet's auxiliary classifiers:
# ResNet-20's four variants, GoogLeNet and SEP-Net-B cover all of those; the
# CIFAR-10 small nets too (SqueezeNet's train_val there has BatchNorm).
TRAIN_VALS = [e for e in ENTRIES if e.depth == 20 or e.name in ("googlenet", "sepnet-b")
              or (e.name in cat.CIFAR10_SMALL and e.kind != "bq")]


@pytest.mark.parametrize("entry", TRAIN_VALS, ids=[e.name for e in TRAIN_VALS])
def test_train_val_training_step(caffe, entry, tmp_path):
    _, path = _prepare(caffe, entry.train_val, tmp_path, _inputs_for_data(caffe, entry))
    net = caffe.Net(path, caffe.TRAIN)
    rng = np.random.default_rng(1)
    net.blobs["data"].data[...] = rng.normal(0, 50, net.blobs["data"].data.shape)
    n_classes = 10 if entry.dataset == "cifar10" else 1000
    net.blobs["label"].data[...] = [0, n_classes - 1]
    out = net.forward()
    losses = [k for k in out if "loss" in k]
    assert losses and all(np.isfinite(out[k]) and out[k] > 0 for k in losses)
    net.backward()
    _pattern_check(net, entry)
    frozen = set(entry.pattern_layers)
    learned = [n for n, layer in zip(net._layer_names, net.layers)
               if layer.type in ("Convolution", "InnerProduct") and n not in frozen]
    assert all(np.isfinite(net.params[n][0].diff).all() for n in learned)
    assert sum(np.abs(net.params[n][0].diff).sum() > 0 for n in learned) >= len(learned) - 2
