"""CIFAR-10 preparation: every source form (official binary and Python
batches, packed or not, image folders, the download path) gives the same
images and labels; the three versions decode back to their definitions;
bad sources fail with one line; an existing output is never half-replaced.

Fixtures are small files in the real formats, built from a handful of real
CIFAR-10 JPEGs of the shared tarball."""
import io
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from conftest import one_line_error
from sepnets.data import cifar10, cifar10_sources
from sepnets.data.datum_lmdb import datum_to_array, read_lmdb, read_mean_binaryproto
from sepnets.errors import UserError

CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck"]
N_TRAIN, N_TEST = 2, 1          # images per class


def _quiet(_msg):
    pass


@pytest.fixture(scope="module")
def real_jpegs(shared_dir):
    """{class: [jpeg bytes]} for the first few real test images of each class."""
    want = N_TRAIN + N_TEST
    got = {c: [] for c in CLASSES}
    path = os.path.join(shared_dir, "data", "cifar10-jpeg.tar.gz")
    with tarfile.open(path, "r|gz") as tf:
        for m in tf:
            parts = m.name.split("/")
            if m.isfile() and len(parts) == 4 and parts[1] == "test" and len(got[parts[2]]) < want:
                got[parts[2]].append(tf.extractfile(m).read())
            if all(len(v) == want for v in got.values()):
                break
    return got


@pytest.fixture(scope="module")
def expected(real_jpegs):
    """{split: (images N x 3 x 32 x 32 uint8 RGB planes, labels)} decoded with Pillow."""
    from PIL import Image
    out = {}
    for split, sl in (("train", slice(0, N_TRAIN)), ("test", slice(N_TRAIN, None))):
        ims, labs = [], []
        for label, c in enumerate(CLASSES):
            for b in real_jpegs[c][sl]:
                ims.append(np.asarray(Image.open(io.BytesIO(b)).convert("RGB")).transpose(2, 0, 1))
                labs.append(label)
        out[split] = (np.stack(ims), np.array(labs))
    return out


def _shuffled_order(n, seed=7):
    return np.random.RandomState(seed).permutation(n)


def _write_binary(d, expected):
    os.makedirs(d)
    x, y = expected["train"]
    order = _shuffled_order(len(y))          # official batches are in random order
    for i, chunk in enumerate(np.array_split(order, 5), 1):
        recs = [bytes([y[j]]) + x[j].tobytes() for j in chunk]
        with open(os.path.join(d, f"data_batch_{i}.bin"), "wb") as f:
            f.write(b"".join(recs))
    x, y = expected["test"]
    with open(os.path.join(d, "test_batch.bin"), "wb") as f:
        f.write(b"".join(bytes([y[j]]) + x[j].tobytes() for j in range(len(y))))
    with open(os.path.join(d, "batches.meta.txt"), "w") as f:
        f.write("\n".join(CLASSES) + "\n")


class _Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 'str' opcodes, as in the official batches
    (cPickle, protocol 2): dict keys and numpy's raw data both load back as
    bytes with encoding='bytes'."""
    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj):
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def _write_python(d, expected):
    """Batches as the official pickles: bytes keys, uint8 [N, 3072] data."""
    os.makedirs(d)

    def dump(name, x, y):
        batch = {b"batch_label": name.encode(), b"labels": [int(v) for v in y],
                 b"data": x.reshape(len(x), -1),
                 b"filenames": [f"img_{i}.png".encode() for i in range(len(y))]}
        with open(os.path.join(d, name), "wb") as f:
            _Py2Pickler(f, protocol=2).dump(batch)

    x, y = expected["train"]
    for i, chunk in enumerate(np.array_split(_shuffled_order(len(y)), 5), 1):
        dump(f"data_batch_{i}", x[chunk], y[chunk])
    dump("test_batch", *expected["test"])
    with open(os.path.join(d, "batches.meta"), "wb") as f:
        _Py2Pickler(f, protocol=2).dump({b"label_names": [c.encode() for c in CLASSES]})


def _write_folder(d, real_jpegs):
    for split, sl in (("train", slice(0, N_TRAIN)), ("test", slice(N_TRAIN, None))):
        for c in CLASSES:
            os.makedirs(os.path.join(d, split, c))
            for i, b in enumerate(real_jpegs[c][sl]):
                with open(os.path.join(d, split, c, f"{i:04d}.jpg"), "wb") as f:
                    f.write(b)


def _tar(src_dir, arcname, dest):
    with tarfile.open(dest, "w:gz") as tf:
        tf.add(src_dir, arcname=arcname)
    return dest


@pytest.fixture(scope="module")
def sources(tmp_path_factory, real_jpegs, expected):
    root = tmp_path_factory.mktemp("cifar_sources")
    s = {}
    s["binary-dir"] = str(root / "bin" / "cifar-10-batches-bin")
    _write_binary(s["binary-dir"], expected)
    s["binary-tar"] = _tar(s["binary-dir"], "cifar-10-batches-bin",
                           str(root / "cifar-10-binary.tar.gz"))
    s["python-dir"] = str(root / "py" / "cifar-10-batches-py")
    _write_python(s["python-dir"], expected)
    s["python-tar"] = _tar(s["python-dir"], "cifar-10-batches-py",
                           str(root / "cifar-10-python.tar.gz"))
    s["folder-dir"] = str(root / "jpeg" / "cifar10-jpeg")
    _write_folder(s["folder-dir"], real_jpegs)
    s["folder-tar"] = _tar(s["folder-dir"], "cifar10-jpeg", str(root / "cifar10-jpeg.tar.gz"))
    # the unpacked forms are also accepted one level up (the folder tar unpacks into)
    s["binary-parent"] = str(root / "bin")
    return s


def _multiset(images, labels):
    return sorted((int(l), im.tobytes()) for im, l in zip(images, labels))


def _lmdb_arrays(path):
    arrays, labels = [], []
    for _key, datum in read_lmdb(path):
        a, lab = datum_to_array(datum)
        arrays.append(a)
        labels.append(lab)
    return np.stack(arrays), np.array(labels)


@pytest.mark.parametrize("form", ["binary-dir", "binary-tar", "binary-parent", "python-dir",
                                  "python-tar", "folder-dir", "folder-tar"])
def test_every_source_form_gives_the_same_images_and_labels(form, sources, expected, tmp_path):
    vdir = cifar10.prepare(sources[form], str(tmp_path / "out"), version=2, progress=_quiet)
    for split in ("train", "test"):
        x, y = _lmdb_arrays(os.path.join(vdir, f"{split}_lmdb"))
        assert x.dtype == np.uint8 and x.shape[1:] == (3, 32, 32)
        assert _multiset(x, y) == _multiset(*expected[split])
    # the Data layer reads in key order: the training set must not be class-sorted
    _x, y = _lmdb_arrays(os.path.join(vdir, "train_lmdb"))
    assert list(y) != sorted(y)


def test_test_set_keeps_source_order(sources, expected, tmp_path):
    vdir = cifar10.prepare(sources["binary-dir"], str(tmp_path / "out"), version=2, progress=_quiet)
    x, y = _lmdb_arrays(os.path.join(vdir, "test_lmdb"))
    np.testing.assert_array_equal(x, expected["test"][0])
    np.testing.assert_array_equal(y, expected["test"][1])


def _gcn_reference(image):
    x = image.astype(np.float64).ravel()
    x -= x.mean()
    return (55.0 * x / np.linalg.norm(x)).reshape(image.shape)


def test_version3_decodes_to_padding_and_gcn(sources, expected, tmp_path):
    vdir = cifar10.prepare(sources["python-tar"], str(tmp_path / "out"), version=3, progress=_quiet)
    ref = {split: np.stack([_gcn_reference(im) for im in expected[split][0]])
           for split in ("train", "test")}
    x, y = _lmdb_arrays(os.path.join(vdir, "train_lmdb"))
    assert x.dtype == np.float32 and x.shape == (len(expected["train"][1]), 3, 40, 40)
    border = np.ones((40, 40), bool)
    border[4:36, 4:36] = False
    assert np.all(x[:, :, border] == 0)
    for im, lab in zip(x, y):
        centre = im[:, 4:36, 4:36]
        assert abs(centre.mean()) < 1e-4
        assert np.linalg.norm(centre) == pytest.approx(55.0, rel=1e-4)
        err = np.abs(ref["train"] - centre).reshape(len(ref["train"]), -1).max(1)
        j = int(err.argmin())
        assert err[j] < 1e-4 and expected["train"][1][j] == lab
    xt, yt = _lmdb_arrays(os.path.join(vdir, "test_lmdb"))
    assert xt.shape == (len(expected["test"][1]), 3, 32, 32)
    np.testing.assert_allclose(xt, ref["test"], atol=1e-4)
    np.testing.assert_array_equal(yt, expected["test"][1])
    mean_train = read_mean_binaryproto(os.path.join(vdir, "mean_train.binaryproto"))
    mean_test = read_mean_binaryproto(os.path.join(vdir, "mean_test.binaryproto"))
    np.testing.assert_allclose(mean_train, x.mean(0), atol=1e-5)
    np.testing.assert_allclose(mean_test, xt.mean(0), atol=1e-5)


def test_version1_is_gcn_then_zca_whitened(sources, expected, tmp_path):
    vdir = cifar10.prepare(sources["binary-tar"], str(tmp_path / "out"), version=1, progress=_quiet)
    x, y = _lmdb_arrays(os.path.join(vdir, "train_lmdb"))
    assert x.dtype == np.float32 and x.shape[1:] == (3, 32, 32)
    flat = x.reshape(len(x), -1).astype(np.float64)
    assert np.abs(flat.mean(0)).max() < 1e-3          # ZCA removes the training mean
    # whitened: the n-1 non-zero principal variances are close to 1 (filter bias 0.1
    # against GCN variances of order 100 shrinks them only slightly), none above 1
    # (non-zero eigenvalues of the covariance = those of the n x n Gram matrix / n)
    n = len(x)
    centred = flat - flat.mean(0)
    var = np.sort(np.linalg.eigvalsh(centred @ centred.T / n))[::-1]
    assert np.all(var[:n - 1] > 0.9) and np.all(var <= 1 + 1e-3)
    assert var[n - 1] < 1e-3
    # and equal to ZCA computed another way: through the SVD of the centred GCN data,
    # (x - m) V diag(1/sqrt(s^2/n + b)) V^T + (x - m)(I - V V^T)/sqrt(b)
    gcn = {sp: np.stack([_gcn_reference(im) for im in expected[sp][0]]).reshape(
        len(expected[sp][1]), -1) for sp in ("train", "test")}
    m = gcn["train"].mean(0)
    _u, sv, vt = np.linalg.svd(gcn["train"] - m, full_matrices=False)
    keep = sv > 1e-6 * sv[0]
    v, sv = vt[keep].T, sv[keep]
    b = 0.1

    def zca(rows):
        c = rows - m
        proj = c @ v
        return proj / np.sqrt(sv ** 2 / n + b) @ v.T + (c - proj @ v.T) / np.sqrt(b)

    want = zca(gcn["train"])
    for row, lab in zip(flat, y):
        err = np.abs(want - row).max(1)
        j = int(err.argmin())
        assert err[j] < 2e-3 and expected["train"][1][j] == lab
    xt, yt = _lmdb_arrays(os.path.join(vdir, "test_lmdb"))
    np.testing.assert_allclose(xt.reshape(len(xt), -1), zca(gcn["test"]), atol=2e-3)
    np.testing.assert_array_equal(yt, expected["test"][1])
    assert sorted(y) == sorted(expected["train"][1])


def test_version3_data_runs_in_the_generated_resnet20(repo_root, sources, tmp_path):
    """Two ResNet-20 iterations (plus one test pass) of the generated train_val on
    version-3 data: the release's crop 32 on 40x40 padded train and 32x32 test data,
    each with its own mean file, must fit together."""
    from sepnets.data.trial_run import retarget, train_iterations
    net_path = os.path.join(repo_root, "prototxt", "cifar10-resnet20", "train_val.prototxt")
    if not os.path.isfile(net_path):
        pytest.fail(f"{net_path} missing (generated by tools/gen_prototxt.py)")
    vdir = cifar10.prepare(sources["binary-dir"], str(tmp_path / "out"), version=3, progress=_quiet)
    data = {split: (os.path.join(vdir, f"{name}_lmdb"), os.path.join(vdir, f"mean_{name}.binaryproto"))
            for split, name in (("TRAIN", "train"), ("TEST", "test"))}
    res = train_iterations(retarget(net_path, data, batch_size=4), str(tmp_path / "run"), 2,
                           test=True)
    assert len(res["losses"]) == 2 and all(np.isfinite(res["losses"]))
    assert "Top shape: 4 3 32 32" in res["log"]


def test_download_path_with_file_url(sources, expected, tmp_path):
    url = "file://" + os.path.abspath(sources["binary-tar"])
    out = tmp_path / "out"
    from conftest import tool_main
    assert tool_main("prepare_cifar10")(["--out", str(out), "--url", url, "--version", "2"]) == 0
    assert (out / "downloads" / "cifar-10-binary.tar.gz").is_file()
    x, y = _lmdb_arrays(str(out / "v2" / "train_lmdb"))
    assert _multiset(x, y) == _multiset(*expected["train"])


def test_download_failure_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="download failed"):
        cifar10.prepare(None, str(tmp_path / "out"), url="file:///nonexistent/cifar.tar.gz",
                        progress=_quiet)


def _cli(repo_root, *args):
    return subprocess.run([sys.executable, os.path.join(repo_root, "tools", "prepare_cifar10.py"),
                           *args], capture_output=True, text=True)


def test_cli_missing_source(repo_root, tmp_path):
    res = _cli(repo_root, "--source", str(tmp_path / "nope.tar.gz"), "--out", str(tmp_path / "o"))
    one_line_error(res, "nope.tar.gz", "not found")


def test_cli_truncated_binary_batch(repo_root, sources, tmp_path):
    d = tmp_path / "bad"
    shutil.copytree(sources["binary-dir"], d)
    with open(d / "data_batch_3.bin", "r+b") as f:
        f.truncate(3073 + 100)
    res = _cli(repo_root, "--source", str(d), "--out", str(tmp_path / "o"))
    one_line_error(res, "data_batch_3.bin", "not a multiple of 3073")
    assert not (tmp_path / "o" / "v3").exists()


def test_cli_incomplete_and_foreign_sources(repo_root, sources, tmp_path):
    d = tmp_path / "partial"
    shutil.copytree(sources["python-dir"], d)
    os.remove(d / "data_batch_5")
    one_line_error(_cli(repo_root, "--source", str(d), "--out", str(tmp_path / "o")),
                    "missing data_batch_5")
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"this is not an archive")
    one_line_error(_cli(repo_root, "--source", str(junk), "--out", str(tmp_path / "o")),
                    "junk.tar.gz", "not a folder or a tar archive")
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(_cli(repo_root, "--source", str(empty), "--out", str(tmp_path / "o")),
                    "no CIFAR-10 data found")
    odd = tmp_path / "odd"
    shutil.copytree(sources["folder-dir"], odd)
    os.rename(odd / "train" / "cat", odd / "train" / "kitten")
    one_line_error(_cli(repo_root, "--source", str(odd), "--out", str(tmp_path / "o")),
                    "kitten", "unknown class folder")


def test_malicious_pickle_is_refused(sources, tmp_path):
    d = tmp_path / "evil"
    shutil.copytree(sources["python-dir"], d)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    with open(d / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f, protocol=2)
    with pytest.raises(UserError, match="refusing to load"):
        cifar10_sources.load(str(d))
    assert not (tmp_path / "pwned").exists()


def test_existing_output_is_never_half_overwritten(sources, tmp_path):
    out = tmp_path / "out"
    first = cifar10.prepare(sources["binary-dir"], str(out), version=2, progress=_quiet)
    before = _lmdb_arrays(os.path.join(first, "train_lmdb"))

    def fail_midway(msg):
        if "train_lmdb:" in msg:           # after part of the new LMDB is written
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        cifar10.prepare(sources["folder-dir"], str(out), version=2, progress=fail_midway, seed=3)
    after = _lmdb_arrays(os.path.join(first, "train_lmdb"))
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])
    assert sorted(os.listdir(out)) == ["v2"]            # no temporary leftovers
    assert sorted(os.listdir(out / "v2")) == sorted(os.listdir(first))


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_cli_archive_cut_short_is_refused(repo_root, sources, tmp_path, keep):
    """An interrupted download of a tar.gz: tarfile's stream mode alone reads a
    gzip stream cut at some points as a shorter valid archive (exit 0 with
    classes missing); the loader must notice the early end."""
    data = open(sources["folder-tar"], "rb").read()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[:int(len(data) * keep)])
    res = _cli(repo_root, "--source", str(cut), "--out", str(tmp_path / "o"))
    one_line_error(res, "cut.tar.gz", "archive ends early")
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_gzip_cut_at_a_member_boundary_is_refused(tmp_path):
    """The silent case: the compressed data stops right after whole members
    (tar's end-of-archive blocks included), so only the missing gzip trailer
    shows the cut."""
    import gzip as _gzip
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        info = tarfile.TarInfo("cifar-10-batches-bin/readme.html")
        info.size = 5
        tf.addfile(info, io.BytesIO(b"hello"))
    whole = _gzip.compress(raw.getvalue())
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(whole[:-8])                  # drop the CRC32/size trailer
    with pytest.raises(UserError, match="archive ends early"):
        cifar10_sources.load(str(cut), progress=_quiet)


@pytest.mark.parametrize("how", ["missing", "empty"])
def test_cli_folder_with_missing_or_empty_class_is_refused(repo_root, sources, tmp_path, how):
    d = tmp_path / "tree"
    shutil.copytree(sources["folder-dir"], d)
    shutil.rmtree(d / "train" / "dog")
    if how == "empty":
        (d / "train" / "dog").mkdir()
    res = _cli(repo_root, "--source", str(d), "--out", str(tmp_path / "o"))
    one_line_error(res, str(d), "train/", "class dog", "10 classes")


def test_archive_missing_a_class_is_refused(sources, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(sources["folder-dir"], src)
    shutil.rmtree(src / "test" / "ship")
    arc = _tar(str(src), "cifar10-jpeg", str(tmp_path / "nine.tar.gz"))
    with pytest.raises(UserError, match=r"'test/'.*class ship"):
        cifar10_sources.load(arc, progress=_quiet)
