"""tools/classify.py: image files get the preprocessing of the training data
(checked against the LMDB records data preparation wrote and against Caffe's
own data layer), and the trained ResNet-20 classifies real CIFAR-10 test images
the same in Caffe and onnxruntime."""
import io
import json
import os
import re
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from sepnets import REPO_ROOT
from sepnets.data import cifar10
from sepnets.data.cifar10_sources import CLASSES, Cifar10
from sepnets.data.datum_lmdb import write_mean_binaryproto
from sepnets.deploy import preprocess, trained

TOOL = os.path.join(REPO_ROOT, "tools", "classify.py")
EXPORT = os.path.join(REPO_ROOT, "tools", "export_onnx.py")
#: the STE pattern model (BatchNorm statistics re-estimated) and its net's train_val
STE = trained.model("cifar10-resnet20-ste-m20-bn")
TRAIN_VAL, CAFFEMODEL = STE.path(STE.train_val), STE.path(STE.caffemodel)
PER_CLASS = {"train": 4, "test": 10}


@pytest.fixture(scope="module")
def cifar_files(tmp_path_factory, shared_dir):
    """The first real CIFAR-10 JPEGs of each class from the shared archive, as
    files (test/<class>/NNNN.jpg) and as the arrays data preparation decodes."""
    from PIL import Image
    root = tmp_path_factory.mktemp("cifar_jpeg")
    pat = re.compile(r"(train|test)/([a-z]+)/(\d+)\.jpg$")
    got = {"train": [], "test": []}
    with tarfile.open(os.path.join(shared_dir, "data", "cifar10-jpeg.tar.gz"), "r|gz") as tar:
        for m in tar:
            g = pat.search(m.name)
            if not g or int(g.group(3)) >= PER_CLASS[g.group(1)]:
                continue
            data = tar.extractfile(m).read()
            path = root / g.group(1) / g.group(2) / f"{g.group(3)}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            im = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.uint8)
            got[g.group(1)].append((str(path), CLASSES.index(g.group(2)), im.transpose(2, 0, 1)))
    return root, got


@pytest.fixture(scope="module")
def cifar_versions(cifar_files, tmp_path_factory):
    """data/cifar10/v1, v2, v3 written by the project's data preparation from
    those images. Version 1's ZCA fit is replaced by a cheap random stand-in (an
    eigendecomposition of 3072 x 3072 takes 17 s here; the fit itself is tested
    in test_data_cifar10.py): what is tested is that the constants applied are
    the ones recorded."""
    _root, got = cifar_files
    images = {s: np.stack([x for _, _, x in v]) for s, v in got.items()}
    labels = {s: np.array([y for _, y, _ in v], np.int64) for s, v in got.items()}
    data = Cifar10(images, labels, "test", "image-folder")
    out = tmp_path_factory.mktemp("prepared") / "cifar10"
    rng = np.random.default_rng(0)

    def stand_in(train, filter_bias=0.1):
        return (rng.normal(0, 1, 3072).astype(np.float32),
                (rng.normal(0, 1, (3072, 3072)) / 55).astype(np.float32))
    saved = cifar10.zca_fit
    cifar10.zca_fit = stand_in
    try:
        dirs = {v: cifar10.write_version(data, str(out), v, progress=lambda _m: None)
                for v in (1, 2, 3)}
    finally:
        cifar10.zca_fit = saved
    return dirs


def _lmdb_records(path):
    import lmdb
    from caffe.proto import caffe_pb2
    out = []
    with lmdb.open(path, readonly=True, lock=False) as env, env.begin() as txn:
        for _k, v in txn.cursor():
            d = caffe_pb2.Datum()
            d.ParseFromString(v)
            arr = np.array(d.float_data, np.float32) if d.float_data else \
                np.frombuffer(d.data, np.uint8).astype(np.float32)
            out.append((arr.reshape(d.channels, d.height, d.width), d.label))
    return out


@pytest.mark.parametrize("version", [1, 2, 3])
def test_image_files_get_the_records_data_preparation_wrote(version, cifar_files,
                                                            cifar_versions):
    """The JPEG files through classify's preprocessing equal the test LMDB's
    records (the test split keeps the source order)."""
    vdir = cifar_versions[version]
    info = json.load(open(os.path.join(vdir, "info.json")))
    if version == 1:
        assert info["zca_file"] == "zca.npz"
        with np.load(os.path.join(vdir, "zca.npz")) as z:
            assert z["mean"].shape == (3072,) and z["matrix"].shape == (3072, 3072)
    pre = preprocess.from_records({}, data_dir=vdir)
    assert pre.dataset == "cifar10" and pre.version == version
    assert pre.class_names == list(CLASSES)
    files = [p for p, _, _ in cifar_files[1]["test"]]
    got = pre(files)
    recs = _lmdb_records(os.path.join(vdir, "test_lmdb"))
    want = np.stack([r for r, _ in recs])
    assert got.shape == want.shape == (len(files), 3, 32, 32)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * max(1, np.abs(want).max()))
    assert [lab for _, lab in recs] == [y for _, y, _ in cifar_files[1]["test"]]


def _data_layer_output(caffe, db, transform, batch):
    """What Caffe's own Data layer (TEST phase) makes of an LMDB."""
    import tempfile
    lines = [f'layer {{ name: "data" type: "Data" top: "data" top: "label" '
             f'include {{ phase: TEST }} transform_param {{ {transform} }} '
             f'data_param {{ source: "{db}" batch_size: {batch} backend: LMDB }} }}']
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write("name: 'd'\n" + "\n".join(lines))
    try:
        net = caffe.Net(f.name, caffe.TEST)
        net.forward()
        return net.blobs["data"].data.copy()
    finally:
        os.remove(f.name)


def test_cifar_transform_equals_caffes_data_layer(caffe, cifar_files, cifar_versions):
    """Mean file, scale and a centre crop, against Caffe's DataTransformer."""
    vdir = cifar_versions[3]
    mean = os.path.join(vdir, "mean_test.binaryproto")
    want = _data_layer_output(caffe, os.path.join(vdir, "test_lmdb"),
                              f'mean_file: "{mean}" crop_size: 28 scale: 0.5 mirror: false', 100)
    pre = preprocess.from_records({"mean_file": mean, "crop_size": 28, "scale": 0.5},
                                  data_dir=vdir)
    got = pre([p for p, _, _ in cifar_files[1]["test"]])
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_imagenet_preprocessing_equals_caffes_data_layer(caffe, tmp_path):
    """ImageNet-style folder: images through convert_imageset (OpenCV, B G R) and
    Caffe's data layer with a mean image and a crop, against classify's path.
    The images already have the mean's size, so no resampling differs."""
    from PIL import Image
    from sepnets.caffeio.env import caffe_tool
    rng = np.random.default_rng(0)
    data = tmp_path / "ilsvrc"
    (data / "img").mkdir(parents=True)
    names = []
    for i in range(6):
        arr = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
        Image.fromarray(arr).save(data / "img" / f"{i}.png")
        names.append(f"img/{i}.png")
    (data / "list.txt").write_text("".join(f"{n} {i % 2}\n" for i, n in enumerate(names)))
    res = subprocess.run([caffe_tool("convert_imageset"), "--resize_height=10",
                          "--resize_width=12", str(data) + "/", str(data / "list.txt"),
                          str(data / "val_lmdb")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    mean = rng.uniform(0, 255, (3, 10, 12)).astype(np.float32)
    write_mean_binaryproto(str(data / "mean.binaryproto"), mean)
    (data / "synset_words.txt").write_text("n01 tench, Tinca tinca\nn02 goldfish\n")
    want = _data_layer_output(caffe, str(data / "val_lmdb"),
                              f'mean_file: "{data / "mean.binaryproto"}" crop_size: 8', 6)
    pre = preprocess.from_records({"mean_file": str(data / "mean.binaryproto"),
                                   "crop_size": 8}, str(data / "val_lmdb"))
    assert pre.dataset == "imagenet" and pre.size == (10, 12) and pre.channel_order == "BGR"
    assert pre.class_names == ["tench, Tinca tinca", "goldfish"]
    got = pre([str(data / n) for n in names])
    np.testing.assert_allclose(got, want, atol=1e-3)
    # mean values instead of a mean image
    want = _data_layer_output(caffe, str(data / "val_lmdb"),
                              "mean_value: 104 mean_value: 117 mean_value: 123 crop_size: 6", 6)
    pre = preprocess.from_records({"mean_value": [104, 117, 123], "crop_size": 6},
                                  str(data / "val_lmdb"))
    np.testing.assert_allclose(pre([str(data / n) for n in names]), want, atol=1e-3)


# ------------------------------------------------------------ the command

@pytest.fixture(scope="module")
def workdir(cifar_versions, tmp_path_factory):
    """A folder to run the tools in whose data/cifar10/v3 is the prepared test
    data: the train_val's data layer names its LMDB and mean file relative to
    the folder Caffe runs in, and a fresh clone (CI) has no data/ of its own."""
    work = tmp_path_factory.mktemp("work")
    (work / "data" / "cifar10").mkdir(parents=True)
    os.symlink(cifar_versions[3], work / "data" / "cifar10" / "v3")
    return work


def _classify(*args, cwd=None):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True,
                         timeout=600, env=env, cwd=cwd)
    return res.returncode, res.stdout, res.stderr


def test_trained_resnet20_classifies_real_images_alike_in_both_backends(
        cifar_files, cifar_versions, workdir, tmp_path):
    """The ResNet-20 pattern model (STE, BatchNorm re-estimated) on 100 real test
    images with --compare: both backends give the same scores to 1e-4, the same
    accuracy, and an accuracy only right preprocessing gives (chance: 0.1)."""
    root, _ = cifar_files
    out = tmp_path / "scores.json"
    rc, stdout, stderr = _classify(
        "--model", TRAIN_VAL, CAFFEMODEL, str(root / "test"), "--compare",
        "--data", cifar_versions[3], "--json", str(out), "--batch", "32", cwd=workdir)
    assert rc == 0, stderr
    assert "100/100 images" in stderr           # the progress bar on a folder
    s = json.loads(out.read_text())
    caffe_acc, ort_acc = s["backends"]["caffe"], s["backends"]["onnxruntime"]
    assert caffe_acc == ort_acc and caffe_acc["labelled"] == 100
    assert caffe_acc["top1"] > 0.6, caffe_acc
    assert s["compare"]["max_rel_diff"] < 1e-4 and s["compare"]["top1_agreement"] == 1.0
    assert "| image | #1 | #2 | #3 | #4 | #5 |" in stdout
    assert "caffe vs onnxruntime: largest difference" in stdout


def test_exported_onnx_file_carries_its_preprocessing(cifar_files, cifar_versions, workdir,
                                                      tmp_path):
    """An .onnx exported from the train_val records the TEST data layer, so it
    classifies without a prototxt, with the scores Caffe gives."""
    root, got = cifar_files
    onnx_path = tmp_path / "r20.onnx"
    res = subprocess.run([sys.executable, EXPORT, TRAIN_VAL, CAFFEMODEL, "-o", str(onnx_path)],
                         capture_output=True, text=True, timeout=300, cwd=workdir)
    assert res.returncode == 0, res.stderr
    files = [p for p, _, _ in got["test"][::7]]
    scores = {}
    for backend, model in (("onnxruntime", [str(onnx_path)]),
                           ("caffe", [TRAIN_VAL, CAFFEMODEL])):
        out = tmp_path / f"{backend}.json"
        rc, stdout, stderr = _classify("--model", *model, *files, "--data", cifar_versions[3],
                                       "--backend", backend, "--json", str(out), "--top", "3",
                                       cwd=workdir)
        assert rc == 0, stderr
        assert len([ln for ln in stdout.splitlines() if ln.startswith("| /")]) == len(files)
        scores[backend] = np.array(json.loads(out.read_text())["scores"][backend])
    c = scores["caffe"]
    assert np.abs(scores["onnxruntime"] - c).max() < 1e-4 * np.abs(c).max()


def _one_line(rc, stderr, *words):
    assert rc != 0
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_bad_input_is_one_line(cifar_files, cifar_versions, workdir, tmp_path):
    root, got = cifar_files
    img = got["test"][0][0]
    deploy = os.path.join(REPO_ROOT, "prototxt", "cifar10-resnet20-pattern-mean",
                          "deploy.prototxt")
    model = CAFFEMODEL
    rc, _, err = _classify("--model", deploy, model, img)
    _one_line(rc, err, "deploy.prototxt", "--train-val")
    rc, _, err = _classify("--model", TRAIN_VAL, model,
                           str(tmp_path / "missing.jpg"))
    _one_line(rc, err, "missing.jpg", "not found")
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    rc, _, err = _classify("--model", TRAIN_VAL, model,
                           str(bad), "--data", cifar_versions[3], cwd=workdir)
    _one_line(rc, err, "notes.jpg", "cannot read the image")
    rc, _, err = _classify("--model", TRAIN_VAL, model,
                           img, "--data", str(tmp_path), cwd=workdir)
    _one_line(rc, err, str(tmp_path), "neither")
    rc, _, err = _classify("--model", deploy, img)
    _one_line(rc, err, "caffemodel")
