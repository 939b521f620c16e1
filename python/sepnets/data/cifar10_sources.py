"""Reading CIFAR-10 from whatever form a researcher has it in: the official
binary or Python archives (packed or unpacked), an image-folder tree
(``train/<class>/*``, ``test/<class>/*``, packed or not), or the official
binary archive downloaded on demand.

Every form yields the same thing, uint8 images N x 3 x 32 x 32 in the
official R, G, B plane order and labels 0..9 in the official class order,
so the preprocessing versions never need to know where the data came from.
Tar archives are read as a stream (one pass, nothing extracted to disk) and
pickles with an unpickler that only rebuilds numpy arrays, because a
downloaded archive is untrusted input.
"""
import bz2
import gzip
import hashlib
import io
import lzma
import os
import pickle
import tarfile
import urllib.error
import urllib.request
import zlib

import numpy as np

from ..errors import UserError
from ..fileio import atomic_path

CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck")
SPLITS = ("train", "test")
SHAPE = (3, 32, 32)
RECORD = 1 + 3 * 32 * 32          # binary batches: 1 label byte + R, G, B planes

BIN_FILES = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}
PY_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}

OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
# MD5 published on the CIFAR-10 page for the binary version.
OFFICIAL_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"


class Cifar10:
    """The data set: per split a uint8 array (N, 3, 32, 32) and int64 labels."""

    def __init__(self, images, labels, source, form):
        self.images = images
        self.labels = labels
        self.source = source
        self.form = form

    def count(self, split):
        return len(self.labels[split])


# ---------------------------------------------------------------- parsing

def _parse_binary(blob, where):
    if len(blob) == 0 or len(blob) % RECORD:
        raise UserError(where, f"size {len(blob)} bytes is not a multiple of {RECORD} "
                        "(1 label byte + 3072 pixel bytes): not a CIFAR-10 binary batch")
    rec = np.frombuffer(blob, np.uint8).reshape(-1, RECORD)
    labels = rec[:, 0].astype(np.int64)
    if labels.max() >= len(CLASSES):
        raise UserError(where, f"label {labels.max()} out of range 0..9: not a CIFAR-10 batch")
    return rec[:, 1:].reshape(-1, *SHAPE), labels


class _ArrayUnpickler(pickle.Unpickler):
    # What the official (Python 2) pickles and Python 3 re-pickles of them
    # reference; _codecs.encode is how protocols < 3 store bytes from Python 3.
    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy", "ndarray"),
                ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
                ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
                ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _parse_pickle(blob, where):
    try:
        d = _ArrayUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except Exception as e:
        raise UserError(where, f"not a CIFAR-10 Python batch ({e})") from e
    if not isinstance(d, dict):
        raise UserError(where, "not a CIFAR-10 Python batch (no dict inside)")
    d = {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}
    if "data" not in d or "labels" not in d:
        raise UserError(where, "not a CIFAR-10 Python batch (no 'data'/'labels'"
                        + (", it looks like CIFAR-100" if "fine_labels" in d else "") + ")")
    data = np.asarray(d["data"])
    labels = np.asarray(d["labels"], np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 \
            or len(labels) != len(data):
        raise UserError(where, f"unexpected batch contents: data {data.dtype}{list(data.shape)}, "
                        f"{len(labels)} labels (want uint8 [N, 3072] and N labels)")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(CLASSES)):
        raise UserError(where, f"label out of range 0..9 ({labels.min()}..{labels.max()})")
    return data.reshape(-1, *SHAPE), labels


def _decode_image(blob, where):
    from PIL import Image
    try:
        with Image.open(io.BytesIO(blob)) as im:
            rgb = np.asarray(im if im.mode == "RGB" else im.convert("RGB"))
    except Exception as e:
        raise UserError(where, f"cannot decode image ({e})") from e
    if rgb.shape[:2] != SHAPE[1:]:
        raise UserError(where, f"image is {rgb.shape[1]}x{rgb.shape[0]}, CIFAR-10 images are 32x32")
    return rgb.transpose(2, 0, 1)


def _folder_key(parts):
    """(split, class) of a path inside an image-folder tree, or None."""
    if len(parts) < 3 or parts[-1].startswith("."):
        return None
    split, cls = parts[-3].lower(), parts[-2].lower()
    if split not in SPLITS:
        return None
    return split, cls


def _class_label(cls, where):
    if cls not in CLASSES:
        raise UserError(where, f"unknown class folder '{cls}' (expected {', '.join(CLASSES)})")
    return CLASSES.index(cls)


# ------------------------------------------------------------- assembling

def _from_batches(found, names, parse, source, form):
    images, labels = {}, {}
    for split in SPLITS:
        parts = [parse(*found[n]) for n in names[split]]
        images[split] = np.concatenate([p[0] for p in parts])
        labels[split] = np.concatenate([p[1] for p in parts])
    return Cifar10(images, labels, source, form)


OFFICIAL_COUNTS = {"train": 50000, "test": 10000}


def _check_classes(sel, split, source):
    """Every class must have images in every split: a missing or empty class
    folder (or an archive cut short, which in the official order loses whole
    classes) would otherwise train a silently 9-class (or worse) model."""
    present = {it[1] for it in sel}
    missing = [c for c in CLASSES if c not in present]
    if missing:
        raise UserError(source, f"image folder '{split}/' has {len(sel):,} images but none of "
                        f"class {', '.join(missing)} (missing or empty class folder; CIFAR-10 "
                        f"has {OFFICIAL_COUNTS[split]:,} {split} images in {len(CLASSES)} classes)")


def _from_folder_items(items, source):
    """items: list of (split, class, name, where, image-bytes-or-array)."""
    images, labels = {}, {}
    for split in SPLITS:
        sel = sorted((it for it in items if it[0] == split), key=lambda it: (it[1], it[2]))
        if not sel:
            raise UserError(source, f"image folder has no '{split}/<class>/' images")
        _check_classes(sel, split, source)
        labels[split] = np.array([_class_label(it[1], it[3]) for it in sel], np.int64)
        images[split] = np.stack([it[4] if isinstance(it[4], np.ndarray)
                                  else _decode_image(it[4], it[3]) for it in sel])
    return Cifar10(images, labels, source, "image-folder")


def _pick_form(source, bins, pys, items):
    all_bin = sum(BIN_FILES.values(), [])
    all_py = sum(PY_FILES.values(), [])
    if all(n in bins for n in all_bin):
        return "binary"
    if all(n in pys for n in all_py):
        return "python"
    if items:
        return "image-folder"
    if bins:
        missing = [n for n in all_bin if n not in bins]
        raise UserError(source, f"incomplete CIFAR-10 binary version: missing {', '.join(missing)}")
    if pys:
        missing = [n for n in all_py if n not in pys]
        raise UserError(source, f"incomplete CIFAR-10 Python version: missing {', '.join(missing)}")
    raise UserError(source, "no CIFAR-10 data found (expected data_batch_1.bin .. test_batch.bin, "
                    "data_batch_1 .. test_batch pickles, or train/<class>/ and "
                    "test/<class>/ images)")


def _open_decompressed(path):
    """The archive's decompressed byte stream, opened by its magic bytes.

    tarfile's own stream mode stops at the end-of-archive blocks and does not
    notice a compressed stream that ends early (a download cut in half reads
    as a shorter, valid archive); these readers raise EOFError at the cut
    when drained to the end (see _drain)."""
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic[:2] == b"\x1f\x8b":
        return gzip.open(path, "rb")
    if magic[:3] == b"BZh":
        return bz2.open(path, "rb")
    if magic == b"\xfd7zXZ\x00":
        return lzma.open(path, "rb")
    return open(path, "rb")


def _drain(fileobj):
    while fileobj.read(1 << 20):
        pass


_EARLY_END = ("unexpected end of data", "ended before the end-of-stream", "truncated")


def _load_tar(path, progress):
    bins, pys, items = {}, {}, []
    wanted_bin = set(sum(BIN_FILES.values(), []))
    wanted_py = set(sum(PY_FILES.values(), []))
    try:
        with _open_decompressed(path) as raw, tarfile.open(fileobj=raw, mode="r|") as tf:
            for m in tf:
                if not m.isfile():
                    continue
                parts = m.name.split("/")
                base = parts[-1]
                where = f"{path}:{m.name}"
                if base in wanted_bin:
                    bins[base] = (tf.extractfile(m).read(), where)
                elif base in wanted_py:
                    pys[base] = (tf.extractfile(m).read(), where)
                else:
                    key = _folder_key(parts)
                    if key:
                        _class_label(key[1], where)
                        items.append((*key, base, where,
                                      _decode_image(tf.extractfile(m).read(), where)))
                        if progress and len(items) % 10000 == 0:
                            progress(f"  read {len(items)} images from {os.path.basename(path)}")
            _drain(raw)
    except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError) as e:
        if isinstance(e, EOFError) or any(t in str(e) for t in _EARLY_END):
            raise UserError(path, f"archive ends early (an interrupted download?) after "
                            f"{len(items) + len(bins) + len(pys):,} members ({e})") from e
        raise UserError(path, f"cannot read archive ({e})") from e
    return bins, pys, items


def _scan_dir(root):
    """Find the batch files or the train/test folders in `root` or one level below."""
    bins, pys, items = {}, {}, []
    wanted_bin = set(sum(BIN_FILES.values(), []))
    wanted_py = set(sum(PY_FILES.values(), []))
    candidates = [root] + sorted(os.path.join(root, d) for d in os.listdir(root)
                                 if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
    for d in candidates:
        names = set(os.listdir(d))
        for n in wanted_bin & names:
            bins.setdefault(n, os.path.join(d, n))
        for n in wanted_py & names:
            pys.setdefault(n, os.path.join(d, n))
        if not items and all(os.path.isdir(os.path.join(d, s)) for s in SPLITS):
            for split in SPLITS:
                sdir = os.path.join(d, split)
                for cls in sorted(os.listdir(sdir)):
                    cdir = os.path.join(sdir, cls)
                    if cls.startswith(".") or not os.path.isdir(cdir):
                        continue
                    _class_label(cls.lower(), cdir)
                    for name in sorted(os.listdir(cdir)):
                        if not name.startswith("."):
                            items.append((split, cls.lower(), name, os.path.join(cdir, name), None))
    return bins, pys, items


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise UserError(path, f"cannot read ({e.strerror})") from e


def load(source, progress=None):
    """Load CIFAR-10 from a tar archive or a folder (any supported form)."""
    if not os.path.exists(source):
        raise UserError(source, "CIFAR-10 source not found")
    if os.path.isdir(source):
        bins, pys, items = _scan_dir(source)
        form = _pick_form(source, bins, pys, items)
        if form == "binary":
            found = {n: (_read(p), p) for n, p in bins.items()}
            return _from_batches(found, BIN_FILES, _parse_binary, source, form)
        if form == "python":
            found = {n: (_read(p), p) for n, p in pys.items()}
            return _from_batches(found, PY_FILES, _parse_pickle, source, form)
        loaded = []
        for i, it in enumerate(items, 1):
            loaded.append((*it[:4], _decode_image(_read(it[3]), it[3])))
            if progress and i % 10000 == 0:
                progress(f"  read {i}/{len(items)} images")
        return _from_folder_items(loaded, source)
    if not tarfile.is_tarfile(source):
        raise UserError(source, "not a folder or a tar archive (give the official CIFAR-10 "
                        "binary/Python archive, an image-folder tree, or one of them unpacked)")
    bins, pys, items = _load_tar(source, progress)
    form = _pick_form(source, bins, pys, items)
    if form == "binary":
        return _from_batches(bins, BIN_FILES, _parse_binary, source, form)
    if form == "python":
        return _from_batches(pys, PY_FILES, _parse_pickle, source, form)
    return _from_folder_items(items, source)


# --------------------------------------------------------------- download

def download(url, dest_dir, progress=None):
    """Fetch the binary archive into dest_dir (kept for later runs) and
    return its path; the official URL's archive is checked against its MD5."""
    name = os.path.basename(url.rstrip("/")) or "cifar-10-binary.tar.gz"
    dest = os.path.join(dest_dir, name)
    md5 = OFFICIAL_MD5 if url == OFFICIAL_URL else None
    if os.path.isfile(dest) and (md5 is None or _md5(dest) == md5):
        if progress:
            progress(f"using {dest} downloaded earlier")
        return dest
    if progress:
        progress(f"downloading {url}")
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, atomic_path(dest) as tmp:
            total = int(resp.headers.get("Content-Length") or 0)
            done, next_report = 0, 0.1
            h = hashlib.md5()
            with open(tmp, "wb") as f:
                while True:
                    chunk = resp.read(1 << 20)
                    if not chunk:
                        break
                    f.write(chunk)
                    h.update(chunk)
                    done += len(chunk)
                    if progress and total and done / total >= next_report:
                        progress(f"  {done >> 20} / {total >> 20} MiB")
                        next_report += 0.1
            if md5 and h.hexdigest() != md5:
                raise UserError(url, f"downloaded file has MD5 {h.hexdigest()}, expected {md5}")
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise UserError(url, f"download failed ({reason})") from e
    return dest


def _md5(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
