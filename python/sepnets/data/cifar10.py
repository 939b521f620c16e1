"""The three CIFAR-10 preprocessing versions compared in the SEP-Nets release,
each written as ``OUT/v<version>/{train_lmdb, test_lmdb, mean_train.binaryproto,
mean_test.binaryproto, info.json}``:

1. global contrast normalization + ZCA whitening (the Network-in-Network
   data). GCN scales each image to zero mean and L2 norm 55; ZCA is fitted on
   the training set with filter bias 0.1. These are the usual pylearn2-style
   constants; the release does not state its own, so they are a choice.
2. plain: the 8-bit images as distributed.
3. GCN as in version 1, then (training set only) 4 zero pixels on each side,
   giving 40x40 images: the release's prototxt takes random 32x32 crops with
   mirroring from them for training and uses crop 32 on the unpadded 32x32
   test images, with a separate mean file per split (its paddedmean /
   mean.binaryproto pair).

Version 1's info.json names ``zca.npz`` (arrays ``mean`` (3072,) and
``matrix`` (3072, 3072), float32): the whitening fitted on the training set,
so that new images (tools/classify.py) get exactly the training transform.

Versions 1 and 3 are float data, stored as float Datums. The training set is
shuffled with a fixed seed because Caffe's Data layer reads an LMDB in key
order and an image-folder tree arrives sorted by class; the test set keeps
the source order. Channels are stored as the official R, G, B planes, as
Caffe's own convert_cifar_data does.
"""
import json
import os
import time

import numpy as np

from ..errors import UserError
from ..fileio import atomic_path, check_output_dir, write_text_atomic
from . import cifar10_sources as sources
from .datum_lmdb import write_lmdb, write_mean_binaryproto

VERSIONS = {
    1: "GCN (scale 55) + ZCA whitening (filter bias 0.1), float",
    2: "plain 8-bit images",
    3: "GCN (scale 55), train padded with 4 zero pixels per side to 40x40, float",
}
GCN_SCALE = 55.0
ZCA_FILTER_BIAS = 0.1
ZCA_FILE = "zca.npz"
PAD = 4
_CHUNK = 5000


def gcn(images, scale=GCN_SCALE):
    """Per-image global contrast normalization: zero mean, L2 norm `scale`."""
    n = len(images)
    out = np.empty((n, int(np.prod(images.shape[1:]))), np.float32)
    for s in range(0, n, _CHUNK):
        x = images[s:s + _CHUNK].reshape(min(_CHUNK, n - s), -1).astype(np.float64)
        x -= x.mean(axis=1, keepdims=True)
        norm = np.sqrt((x * x).sum(axis=1, keepdims=True)) / scale
        norm[norm < 1e-8] = 1.0
        out[s:s + _CHUNK] = x / norm
    return out.reshape(images.shape)


def zca_fit(train, filter_bias=ZCA_FILTER_BIAS):
    """(mean, P): whitening x -> (x - mean) @ P fitted on the training rows."""
    x = train.reshape(len(train), -1)
    mean = x.mean(axis=0, dtype=np.float64)
    cov = np.zeros((x.shape[1], x.shape[1]), np.float64)
    m32 = mean.astype(np.float32)
    for s in range(0, len(x), _CHUNK):
        c = x[s:s + _CHUNK] - m32
        cov += c.T @ c          # float32 products, float64 accumulation
    cov /= len(x)
    cov[np.diag_indices_from(cov)] += filter_bias
    eigval, eigvec = np.linalg.eigh(cov)
    p = (eigvec * (1.0 / np.sqrt(eigval))) @ eigvec.T
    return mean.astype(np.float32), p.astype(np.float32)


def zca_apply(images, mean, p):
    x = images.reshape(len(images), -1)
    out = np.empty_like(x, dtype=np.float32)
    for s in range(0, len(x), _CHUNK):
        out[s:s + _CHUNK] = (x[s:s + _CHUNK] - mean) @ p
    return out.reshape(images.shape)


def _pad(image):
    return np.pad(image, ((0, 0), (PAD, PAD), (PAD, PAD)))


def preprocess(data, version, progress=None, constants=None):
    """{split: (images, labels, pad)} for one version; images in the stored dtype.

    `constants` (a dict), if given, receives the fitted ZCA ``mean``/``matrix``."""
    say = progress or (lambda _m: None)
    if version == 2:
        return {s: (data.images[s], data.labels[s], False) for s in sources.SPLITS}
    say("  global contrast normalization")
    normed = {s: gcn(data.images[s]) for s in sources.SPLITS}
    if version == 1:
        say("  fitting ZCA whitening on the training set")
        mean, p = zca_fit(normed["train"])
        if constants is not None:
            constants.update(mean=mean, matrix=p)
        say("  applying ZCA whitening")
        return {s: (zca_apply(normed[s], mean, p), data.labels[s], False) for s in sources.SPLITS}
    if version == 3:
        return {"train": (normed["train"], data.labels["train"], True),
                "test": (normed["test"], data.labels["test"], False)}
    raise UserError(str(version), "unknown CIFAR-10 version (use 1, 2 or 3)")


def shuffled(data, seed):
    """A copy of `data` whose training set is in a seeded random order."""
    perm = np.random.RandomState(seed).permutation(data.count("train"))
    images = dict(data.images, train=data.images["train"][perm])
    labels = dict(data.labels, train=data.labels["train"][perm])
    return sources.Cifar10(images, labels, data.source, data.form)


def write_version(data, out, version, progress=print, seed=0):
    """Write OUT/v<version>/ from loaded data; returns that folder.

    The whole folder is built beside its final place and swapped in only
    when complete, so an existing version is never left half-overwritten.
    """
    if version not in VERSIONS:
        raise UserError(str(version), "unknown CIFAR-10 version (use 1, 2 or 3)")
    t0 = time.time()
    vdir = os.path.join(os.path.abspath(out), f"v{version}")
    progress(f"version {version}: {VERSIONS[version]}")
    data = shuffled(data, seed)
    zca = {}
    splits = preprocess(data, version, progress, zca)
    info = {"version": version, "description": VERSIONS[version],
            "source": data.source, "source_form": data.form,
            "channel_order": "RGB", "label_names": list(sources.CLASSES),
            "train_shuffle_seed": seed, "splits": {}}
    if version != 2:
        info["gcn_scale"] = GCN_SCALE
    if version == 1:
        info["zca_filter_bias"] = ZCA_FILTER_BIAS
        info["zca_file"] = ZCA_FILE
    with atomic_path(vdir, is_dir=True) as tmp:
        for split in sources.SPLITS:
            images, labels, pad = splits[split]
            records = ((_pad(im) if pad else im, lab) for im, lab in zip(images, labels))
            write_lmdb(os.path.join(tmp, f"{split}_lmdb"), records, len(labels), progress,
                       what=f"v{version}/{split}_lmdb")
            mean = images.mean(axis=0, dtype=np.float64)
            write_mean_binaryproto(os.path.join(tmp, f"mean_{split}.binaryproto"),
                                   _pad(mean) if pad else mean)
            border = 2 * PAD if pad else 0
            shape = [images.shape[1], images.shape[2] + border, images.shape[3] + border]
            info["splits"][split] = {
                "count": int(len(labels)), "shape": shape, "dtype": str(images.dtype),
                "per_class": np.bincount(labels, minlength=len(sources.CLASSES)).tolist()}
        if zca:
            with open(os.path.join(tmp, ZCA_FILE), "wb") as f:
                np.savez(f, mean=zca["mean"], matrix=zca["matrix"])
        write_text_atomic(os.path.join(tmp, "info.json"), json.dumps(info, indent=2) + "\n")
        _modes_from_umask(tmp)
    progress(f"version {version}: wrote {vdir} in {time.time() - t0:.1f} s")
    return vdir


def _modes_from_umask(root):
    """Temporary files and folders are private (0600/0700); give the finished
    ones the modes any other new file would get, so the data can be shared."""
    umask = os.umask(0)
    os.umask(umask)
    for d, _dirs, files in os.walk(root):
        os.chmod(d, 0o777 & ~umask)
        for f in files:
            os.chmod(os.path.join(d, f), 0o666 & ~umask)


def load_data(source=None, out="data/cifar10", url=sources.OFFICIAL_URL, progress=print):
    """Load from `source`, or download the official binary archive into OUT/downloads."""
    if source is None:
        source = sources.download(url, os.path.join(os.path.abspath(out), "downloads"), progress)
    t0 = time.time()
    progress(f"reading {source}")
    data = sources.load(source, progress)
    progress(f"read {data.count('train')} train + {data.count('test')} test images "
             f"({data.form}) in {time.time() - t0:.1f} s")
    return data


def prepare(source, out, version=3, progress=print, url=sources.OFFICIAL_URL, seed=0):
    """Prepare one version from a source (None: download); returns OUT/v<version>."""
    _check_out(source, out)
    data = load_data(source, out, url, progress)
    return write_version(data, out, version, progress, seed)


def _check_out(source, out):
    """Refuse an unusable --out before the minutes of reading the source."""
    check_output_dir(out, create=False)
    if source is None:
        return
    src, dst = os.path.realpath(source), os.path.realpath(out)
    if src == dst or (os.path.isdir(src) and dst.startswith(src + os.sep)):
        raise UserError(out, "output folder is inside the source folder; choose another --out")


def command(args):
    """What ``tools/prepare_cifar10.py`` does with its parsed command line."""
    t0 = time.time()

    def progress(msg):
        print(msg, flush=True)

    _check_out(args.source, args.out)
    data = load_data(args.source, args.out, args.url, progress)
    for v in dict.fromkeys(args.version):
        write_version(data, args.out, v, progress, args.seed)
    progress(f"done in {time.time() - t0:.1f} s")
    return 0
