"""The generated ResNet-20 and GoogLeNet files are the authors' released ones
layer by layer, apart from where the data comes from, and a model saved from
the release's ResNet-20 loads into (and computes the same as) ours."""
import os

import numpy as np
import pytest
from google.protobuf import text_format

from sepnets.netgen import catalog as cat

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def release(shared_dir):
    d = os.path.join(shared_dir, "reference", "sepnets-release")
    if not os.path.isdir(d):
        pytest.fail(f"{d} not found: the release files are part of the shared folder")
    return d


def _parse(caffe, path):
    net = caffe.proto.caffe_pb2.NetParameter()
    with open(path) as f:
        text_format.Merge(f.read(), net)
    return net


def _strip_data_paths(net):
    """Clear what may differ: sources, mean files, batch sizes, and the storage
    backend (the release's LevelDB; ours LMDB) plus the release's no-op
    image_data_param on a Data layer."""
    for lp in net.layer:
        if lp.type == "Data":
            lp.data_param.ClearField("source")
            lp.data_param.ClearField("batch_size")
            lp.data_param.ClearField("backend")
            lp.transform_param.ClearField("mean_file")
            lp.ClearField("image_data_param")
    return net


def _assert_same_layers(ours, theirs, allowed=()):
    assert [lp.name for lp in ours.layer] == [lp.name for lp in theirs.layer]
    for a, b in zip(ours.layer, theirs.layer):
        if a.name in allowed:
            continue
        assert a == b, f"layer {a.name} differs:\n{a}\nvs release:\n{b}"


RESNET = "CIFAR-10/ResNet-20/prototxt/resnet20_relu_msra_cifar10{}.prototxt"


@pytest.mark.parametrize("ours, theirs", [
    ("cifar10-resnet20", ""),
    ("cifar10-resnet20-fix-pattern", "_fix_pattern"),
])
def test_resnet20_equals_release(caffe, release, ours, theirs):
    e = cat.by_name()[ours]
    a = _strip_data_paths(_parse(caffe, os.path.join(REPO, e.train_val)))
    b = _strip_data_paths(_parse(caffe, os.path.join(release, RESNET.format(theirs))))
    _assert_same_layers(a, b)


@pytest.mark.parametrize("ours, theirs", [
    ("googlenet", "train_val"),
    ("googlenet-fix-3x3-pattern", "train_val_fix_3x3_pattern"),
    ("googlenet-fix-5x5-pattern", "train_val_fix_5x5_pattern"),
    ("googlenet-fix-3x3-5x5-pattern", "train_val_fix_3x3_5x5_pattern"),
    ("googlenet-fix-projall1x1-pattern", "train_val_fix_projAll1x1_pattern"),
])
def test_googlenet_equals_release(caffe, release, ours, theirs):
    e = cat.by_name()[ours]
    a = _strip_data_paths(_parse(caffe, os.path.join(REPO, e.train_val)))
    b = _strip_data_paths(_parse(caffe, os.path.join(release, "googlenet", "prototxt",
                                                     theirs + ".prototxt")))
    # The release's projAll1x1 file alone comments out 'include { phase: TEST }' of
    # the main accuracies (computing them in training too); we keep them test-only.
    quirk = ("loss3/top-1", "loss3/top-5") if "projall1x1" in ours else ()
    _assert_same_layers(a, b, allowed=quirk)
    for name in quirk:
        la = next(lp for lp in a.layer if lp.name == name)
        lb = next(lp for lp in b.layer if lp.name == name)
        la.ClearField("include")
        assert la == lb


def _with_inputs(caffe, net, batch, shape):
    """The net with its Data layers replaced by one Input layer (data, label)."""
    out = caffe.proto.caffe_pb2.NetParameter()
    out.CopyFrom(net)
    del out.layer[:]
    inp = out.layer.add(name="data", type="Input", top=["data", "label"])
    inp.input_param.shape.add(dim=[batch, *shape])
    inp.input_param.shape.add(dim=[batch])
    out.layer.extend(lp for lp in net.layer if lp.type != "Data")
    return out


def _load(caffe, net, tmp_path, name, phase):
    path = tmp_path / f"{name}.prototxt"
    path.write_text(text_format.MessageToString(net))
    return caffe.Net(str(path), phase)


def test_resnet20_blob_and_param_shapes_equal_release(caffe, release, tmp_path):
    e = cat.by_name()["cifar10-resnet20"]
    nets = []
    for i, path in enumerate((os.path.join(REPO, e.train_val),
                              os.path.join(release, RESNET.format("")))):
        proto = _with_inputs(caffe, _parse(caffe, path), 2, (3, 32, 32))
        nets.append(_load(caffe, proto, tmp_path, f"n{i}", caffe.TEST))
    ours, theirs = nets
    assert list(ours.blobs) == list(theirs.blobs)
    for k in ours.blobs:
        assert ours.blobs[k].data.shape == theirs.blobs[k].data.shape, k
    assert list(ours.params) == list(theirs.params)
    for k in ours.params:
        assert [p.data.shape for p in ours.params[k]] == [p.data.shape for p in theirs.params[k]]


def test_release_resnet20_model_loads_into_generated_deploys(caffe, release, tmp_path):
    """Weights saved from the release's net load by name into our deploy and
    into the pattern-MEAN deploy (whose alphas stay unbound), and our deploy
    then computes the release net's scores."""
    proto = _with_inputs(caffe, _parse(caffe, os.path.join(release, RESNET.format(""))),
                         2, (3, 32, 32))
    theirs = _load(caffe, proto, tmp_path, "release", caffe.TEST)
    rng = np.random.default_rng(0)
    for name, blobs in theirs.params.items():
        if theirs.layers[list(theirs._layer_names).index(name)].type == "BatchNorm":
            c = blobs[0].data.shape[0]
            blobs[0].data[...] = rng.normal(0, 0.1, c)
            blobs[1].data[...] = rng.uniform(0.5, 2.0, c)
            blobs[2].data[...] = 1.0
        else:
            for b in blobs:
                b.data[...] = rng.normal(0, 0.1, b.data.shape)
    model = tmp_path / "release.caffemodel"
    theirs.save(str(model))
    x = rng.normal(0, 1, (2, 3, 32, 32)).astype(np.float32)
    theirs.blobs["data"].data[...] = x
    theirs.blobs["label"].data[...] = [0, 1]
    want = theirs.forward()["acctop1"], theirs.blobs["score"].data.copy()

    by = cat.by_name()
    ours = caffe.Net(os.path.join(REPO, by["cifar10-resnet20"].deploy), caffe.TEST)
    ours.copy_from(str(model))
    for name, blobs in theirs.params.items():
        for a, b in zip(ours.params[name], blobs):
            np.testing.assert_array_equal(a.data, b.data)
    ours.blobs["data"].reshape(2, 3, 32, 32)
    ours.blobs["data"].data[...] = x
    ours.forward()
    np.testing.assert_allclose(ours.blobs["score"].data, want[1], rtol=1e-4, atol=1e-5)

    pat = caffe.Net(os.path.join(REPO, by["cifar10-resnet20-pattern-mean"].deploy), caffe.TEST)
    pat.copy_from(str(model))
    for name in by["cifar10-resnet20-pattern-mean"].pattern_layers:
        np.testing.assert_array_equal(pat.params[name][0].data, theirs.params[name][0].data)
        assert not pat.params[name][2].data.any()     # alpha unbound until the first pass
    pat.blobs["data"].reshape(2, 3, 32, 32)
    pat.blobs["data"].data[...] = x
    pat.forward()
    w = theirs.params["map16_1_conv_a"][0].data
    np.testing.assert_allclose(pat.params["map16_1_conv_a"][2].data,
                               np.abs(w).reshape(w.shape[0], -1).mean(1), rtol=1e-5)
