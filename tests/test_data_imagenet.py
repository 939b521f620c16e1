"""ImageNet preparation on the real 186-image sample plus the awkward files
real ImageNet holds: its 23 grayscale JPEGs, a CMYK JPEG, PNG data named
.JPEG, a truncated JPEG and a file that is no image at all. Odd files must go
in as 3-channel colour with the right colours, broken ones must be listed in
skipped.txt (or stop the run with --strict), and a few GoogLeNet and SEP-Net
iterations must run on the result at 224x224."""
import glob
import os
import shutil
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from conftest import one_line_error
from sepnets.data import imagenet
from sepnets.data.datum_lmdb import (datum_to_array, lmdb_count, read_lmdb,
                                     read_mean_binaryproto)

RESIZE = 256
N_VAL = 6


def _quiet(_msg):
    pass


@pytest.fixture(scope="module")
def sample(shared_dir, tmp_path_factory):
    """The real sample unpacked, with the odd files added to its train tree and
    a flat ILSVRC-2012-style val folder with a 'FILENAME LABEL' file."""
    root = tmp_path_factory.mktemp("imagenet")
    with tarfile.open(os.path.join(shared_dir, "data", "imagenet-sample.tar")) as tf:
        tf.extractall(root)
    base = root / "imagenet-sample"
    train = base / "train"
    wnids = sorted(os.listdir(train))
    from PIL import Image

    def first(w):
        return sorted(glob.glob(str(train / w / "*")))[0]

    rgb = [w for w in wnids if Image.open(first(w)).mode == "RGB"]
    gray = [w for w in wnids if Image.open(first(w)).mode == "L"]
    odd = {}
    w = rgb[0]
    Image.open(first(w)).convert("CMYK").save(train / w / f"{w}_cmyk.JPEG", "JPEG", quality=95)
    odd["cmyk"] = (w, f"{w}_cmyk.JPEG")
    w = rgb[1]
    Image.open(first(w)).save(train / w / f"{w}_png.JPEG", "PNG")
    odd["png"] = (w, f"{w}_png.JPEG")
    w = rgb[2]
    data = open(first(w), "rb").read()
    (train / w / f"{w}_truncated.JPEG").write_bytes(data[:len(data) // 3])
    odd["truncated"] = (w, f"{w}_truncated.JPEG")
    w = rgb[3]
    (train / w / f"{w}_garbage.JPEG").write_bytes(b"<html>403 Forbidden</html>\n" * 20)
    odd["garbage"] = (w, f"{w}_garbage.JPEG")
    odd["gray"] = (gray[0], os.path.basename(first(gray[0])))

    val = base / "val"
    val.mkdir()
    lines, val_labels = [], {}
    for i, w in enumerate([gray[1]] + rgb[4:4 + N_VAL - 1], 1):
        name = f"ILSVRC2012_val_{i:08d}.JPEG"
        shutil.copy(first(w), val / name)
        token = w if i % 2 else str(wnids.index(w))       # both label styles
        lines.append(f"{name} {token}")
        val_labels[name] = wnids.index(w)
    lines.append("ILSVRC2012_val_00000099.JPEG 3")          # listed but missing
    (base / "val.txt").write_text("\n".join(lines) + "\n")
    return {"base": base, "train": train, "val": val, "val_labels": base / "val.txt",
            "wnids": wnids, "odd": odd, "val_expected": val_labels}


@pytest.fixture(scope="module")
def prepared(sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("ilsvrc12") / "out"
    done = imagenet.prepare(str(sample["train"]), str(out), val=str(sample["val"]),
                            val_labels=str(sample["val_labels"]), resize=RESIZE, jobs=2,
                            progress=_quiet)
    return out, done


def _datum_by_suffix(db, suffix):
    for key, datum in read_lmdb(db):
        if key.endswith(suffix):
            return key, datum
    raise AssertionError(f"{suffix} not in {db}")


def _expected_rgb(path, size=32):
    """Pillow's RGB reading of `path`, shrunk so resampling differences vanish."""
    from PIL import Image
    im = Image.open(path).convert("RGB").resize((RESIZE, RESIZE), Image.BILINEAR)
    return np.asarray(im.resize((size, size), Image.BOX), np.float64)


def _stored_rgb(datum, size=32):
    from PIL import Image
    bgr, _label = datum_to_array(datum)
    rgb = np.ascontiguousarray(bgr[::-1].transpose(1, 2, 0))
    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.BOX), np.float64)


def test_outputs_and_counts(sample, prepared):
    out, done = prepared
    assert set(done) == set(imagenet.OUTPUTS)
    n_train = sum(len(os.listdir(sample["train"] / w)) for w in sample["wnids"])
    # the truncated and the garbage file are out, everything else is in
    assert lmdb_count(str(out / "train_lmdb")) == n_train - 2
    assert lmdb_count(str(out / "val_lmdb")) == N_VAL
    assert not glob.glob(str(out / ".*"))                   # no staging leftovers


def test_odd_images_go_in_as_colour_with_the_right_colours(sample, prepared):
    out, _ = prepared
    for kind in ("cmyk", "png", "gray"):
        w, name = sample["odd"][kind]
        key, datum = _datum_by_suffix(str(out / "train_lmdb"), f"/{w}/{name}")
        assert datum.channels == 3 and datum.height == RESIZE and datum.width == RESIZE
        assert key.split("_", 1)[1].startswith("fixed/"), key     # re-encoded first
        got = _stored_rgb(datum)
        want = _expected_rgb(sample["train"] / w / name)
        assert np.abs(got - want).mean() < 6, kind
        assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.98, kind  # not inverted
        if kind == "gray":
            assert np.abs(got[..., 0] - got[..., 1]).max() <= 2
            assert np.abs(got[..., 1] - got[..., 2]).max() <= 2
    # a plain RGB JPEG goes in untouched from the source folder
    w = sample["odd"]["cmyk"][0]
    key, _ = _datum_by_suffix(str(out / "train_lmdb"), f"/{w}/{w}_1.JPEG")
    assert key.split("_", 1)[1].startswith("train/"), key


def test_broken_files_are_listed_not_dropped_silently(sample, prepared):
    out, _ = prepared
    rows = [line.split("\t") for line in (out / "skipped.txt").read_text().splitlines()]
    listed = {(split, path): reason for split, path, reason in rows}
    for kind in ("truncated", "garbage"):
        w, name = sample["odd"][kind]
        assert ("train", f"{w}/{name}") in listed
    assert "truncated" in listed[("train", "/".join(sample["odd"]["truncated"]))]
    assert ("val", "ILSVRC2012_val_00000099.JPEG") in listed
    assert len(rows) == 3
    train_list = (out / "train.txt").read_text()
    assert "_truncated.JPEG" not in train_list and "_garbage.JPEG" not in train_list


def test_lists_labels_and_synsets(sample, prepared):
    out, _ = prepared
    wnids = sample["wnids"]
    for line in (out / "train.txt").read_text().splitlines():
        path, label = line.rsplit(" ", 1)
        assert wnids.index(path.split("/")[0]) == int(label)
        assert (sample["train"] / path).is_file()
    val = dict(line.rsplit(" ", 1) for line in (out / "val.txt").read_text().splitlines())
    assert {k: int(v) for k, v in val.items()} == sample["val_expected"]
    names = dict(line.split(" ", 1) for line in
                 (sample["base"] / "synset_words.txt").read_text().splitlines())
    synsets = (out / "synset_words.txt").read_text().splitlines()
    assert synsets == [f"{w} {names[w]}" for w in wnids]
    labels = [d.label for _k, d in read_lmdb(str(out / "train_lmdb"))]
    assert labels != sorted(labels)                       # shuffled for the Data layer


def test_mean_is_the_training_mean(prepared):
    out, _ = prepared
    mean = read_mean_binaryproto(str(out / "mean.binaryproto"))
    assert mean.shape == (3, RESIZE, RESIZE)
    total = np.zeros((3, RESIZE, RESIZE))
    n = 0
    for _k, datum in read_lmdb(str(out / "train_lmdb")):
        total += datum_to_array(datum)[0]
        n += 1
    np.testing.assert_allclose(mean, total / n, atol=1e-2)


def _cli(repo_root, *args):
    return subprocess.run([sys.executable, os.path.join(repo_root, "tools", "prepare_imagenet.py"),
                           *args], capture_output=True, text=True)


def test_strict_stops_and_leaves_existing_outputs_alone(repo_root, sample, tmp_path):
    out = tmp_path / "out"
    (out / "train_lmdb").mkdir(parents=True)
    (out / "train_lmdb" / "data.mdb").write_bytes(b"earlier run")
    (out / "train.txt").write_text("earlier run\n")
    res = _cli(repo_root, "--train", str(sample["train"]), "--out", str(out), "--strict",
               "--jobs", "2")
    # files are checked in sorted order: the truncated one (rgb[2]) comes first
    one_line_error(res, "_truncated.JPEG", "unreadable image", "1 more unreadable")
    assert (out / "train_lmdb" / "data.mdb").read_bytes() == b"earlier run"
    assert (out / "train.txt").read_text() == "earlier run\n"
    assert sorted(os.listdir(out)) == ["train.txt", "train_lmdb"]


def test_missing_and_malformed_inputs(repo_root, sample, tmp_path):
    one_line_error(_cli(repo_root, "--train", str(tmp_path / "nope"),
                         "--out", str(tmp_path / "o")), "nope", "training folder not found")
    assert not (tmp_path / "o").exists()
    bad = tmp_path / "bad.txt"
    bad.write_text("ILSVRC2012_val_00000001.JPEG 0\nILSVRC2012_val_00000002.JPEG n99999999\n")
    one_line_error(_cli(repo_root, "--train", str(sample["train"]), "--val", str(sample["val"]),
                         "--val-labels", str(bad), "--out", str(tmp_path / "o")),
                    "bad.txt", "line 2", "n99999999")
    devkit = tmp_path / "ILSVRC2012_validation_ground_truth.txt"
    devkit.write_text("490\n361\n")
    one_line_error(_cli(repo_root, "--train", str(sample["train"]), "--val", str(sample["val"]),
                         "--val-labels", str(devkit), "--out", str(tmp_path / "o")),
                    "line 1", "devkit")
    one_line_error(_cli(repo_root, "--train", str(sample["train"]), "--val", str(sample["val"]),
                         "--out", str(tmp_path / "o")), "needs --val-labels")
    # the label file is an input: an output of the same name must not replace it
    one_line_error(_cli(repo_root, "--train", str(sample["train"]), "--val", str(sample["val"]),
                         "--val-labels", str(sample["val_labels"]), "--out", str(sample["base"])),
                    "would overwrite an input")


# ------------------------------------------------------- 224x224 iterations

def _generated_train_val(repo_root, names):
    for name in names:
        for cand in [os.path.join(repo_root, "prototxt", name, "train_val.prototxt")] + sorted(
                glob.glob(os.path.join(repo_root, "prototxt", f"{name}_*train_val*.prototxt"))):
            if os.path.isfile(cand):
                return cand
    return None


def _own_net(caffe, lmdb, mean_file, n_classes):
    """Stand-in used only while the generated prototxt is absent: a small
    224x224 net (Data layer on the LMDB, crop 224) built with caffe.NetSpec,
    with one of the project's BinaryPatternConvolution layers."""
    from caffe import layers as L, params as P
    n = caffe.NetSpec()
    n.data, n.label = L.Data(source=lmdb, backend=P.Data.LMDB, batch_size=2, ntop=2,
                             transform_param=dict(crop_size=224, mirror=True, mean_file=mean_file))
    n.conv1 = L.Convolution(n.data, num_output=8, kernel_size=7, stride=4,
                            weight_filler=dict(type="msra"))
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    n.pattern = L.BinaryPatternConvolution(
        n.relu1, convolution_param=dict(num_output=8, kernel_size=3, pad=1,
                                        weight_filler=dict(type="msra")),
        binary_pattern_param=dict(), param=[dict(lr_mult=0, decay_mult=0),
                                            dict(lr_mult=2, decay_mult=0),
                                            dict(lr_mult=1, decay_mult=0)])
    n.pool = L.Pooling(n.pattern, pool=P.Pooling.AVE, global_pooling=True)
    n.fc = L.InnerProduct(n.pool, num_output=n_classes, weight_filler=dict(type="xavier"))
    n.loss = L.SoftmaxWithLoss(n.fc, n.label)
    return n.to_proto()


@pytest.mark.parametrize("names", [["googlenet"], ["sepnet-r", "sepnet"]],
                         ids=["googlenet", "sepnet"])
def test_a_few_iterations_at_224(names, repo_root, sample, prepared, tmp_path):
    """Two training iterations (after one test pass on val_lmdb) of the generated
    train_val prototxt (prototxt/<net>/train_val.prototxt, or prototxt/<net>_*train_val*)
    with its Data layers pointed at the prepared LMDBs and mean file, batch 2.
    Where the generator has not produced the file, a small NetSpec net stands in
    (see _own_net) and the test says so in its output."""
    from sepnets.data.trial_run import retarget, train_iterations
    out, _ = prepared
    mean = str(out / "mean.binaryproto")
    path = _generated_train_val(repo_root, names)
    if path:
        net = retarget(path, {"TRAIN": (str(out / "train_lmdb"), mean),
                              "TEST": (str(out / "val_lmdb"), mean)}, batch_size=2)
        test = True
    else:
        print(f"no generated train_val for {names[0]}: using the NetSpec stand-in")
        from sepnets.caffeio.env import import_caffe
        net = _own_net(import_caffe(), str(out / "train_lmdb"), mean, len(sample["wnids"]))
        test = False
    res = train_iterations(net, str(tmp_path / "run"), iterations=2, test=test)
    assert len(res["losses"]) == 2 and all(np.isfinite(res["losses"])), res["log"][-2000:]
    assert "Top shape: 2 3 224 224" in res["log"]
