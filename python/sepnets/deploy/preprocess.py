"""The preprocessing a net was trained with, applied to new image files.

A net's accuracy holds only for inputs prepared the way its training data
was, and that is recorded in two places: the prepared data folder (CIFAR-10's
info.json: version 1 GCN + ZCA with the fitted constants in zca.npz, 2 plain,
3 GCN; ImageNet's mean.binaryproto and synset_words.txt, images resized to
the mean's size by convert_imageset) and the net's TEST data layer (Caffe's
DataTransformer: centre crop, mean file or mean values, scale). Both are
read here; nothing is assumed that they do not say.

Channel order follows the LMDBs: CIFAR-10 planes are R, G, B (as
convert_cifar_data writes them); convert_imageset decodes with OpenCV, so
ImageNet Datums are B, G, R.
"""
import json
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from . import _caffeio as io
from . import netdef

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".gif", ".tif", ".tiff", ".webp")


@dataclass
class Preprocess:
    dataset: str                     # "cifar10" or "imagenet"
    size: tuple                      # (H, W) images are brought to before the crop
    channel_order: str               # "RGB" or "BGR"
    class_names: list
    version: Optional[int] = None    # CIFAR-10 preprocessing version
    gcn_scale: Optional[float] = None
    zca_mean: Optional[np.ndarray] = None
    zca_matrix: Optional[np.ndarray] = None
    mean: Optional[np.ndarray] = None        # (C, H, W) mean image
    mean_value: list = field(default_factory=list)
    crop: int = 0
    scale: float = 1.0
    notes: list = field(default_factory=list)

    def load(self, path):
        """One image file as uint8 (C, H, W) in the data set's channel order."""
        from PIL import Image, UnidentifiedImageError
        try:
            with Image.open(path) as im:
                im = im.convert("RGB")
                if im.size != (self.size[1], self.size[0]):
                    im = im.resize((self.size[1], self.size[0]), Image.BILINEAR)
                arr = np.asarray(im, np.uint8)
        except (UnidentifiedImageError, OSError) as e:
            raise io.UserError(path, f"cannot read the image ({e.__class__.__name__})") from None
        if self.channel_order == "BGR":
            arr = arr[:, :, ::-1]
        return np.ascontiguousarray(arr.transpose(2, 0, 1))

    def datum(self, images):
        """What the LMDB would hold for these uint8 (N, C, H, W) images."""
        x = images.astype(np.float32)
        if self.dataset != "cifar10" or self.version == 2:
            return x
        x = io.cifar10_gcn(images, self.gcn_scale)
        if self.version == 1:
            flat = x.reshape(len(x), -1)
            x = ((flat - self.zca_mean) @ self.zca_matrix).astype(np.float32).reshape(x.shape)
        return x

    def transform(self, x):
        """Caffe's TEST DataTransformer: (datum - mean) * scale, centre crop."""
        if self.mean is not None:
            if self.mean.shape != x.shape[1:]:
                raise io.UserError("mean file", f"mean of shape {self.mean.shape} does not fit "
                                                f"data of shape {x.shape[1:]}")
            x = x - self.mean
        elif self.mean_value:
            mv = np.array(self.mean_value if len(self.mean_value) > 1
                          else self.mean_value * x.shape[1], np.float32)
            x = x - mv.reshape(1, -1, 1, 1)
        if self.scale != 1.0:
            x = x * np.float32(self.scale)
        if self.crop:
            h, w = x.shape[2:]
            top, left = (h - self.crop) // 2, (w - self.crop) // 2
            x = x[:, :, top:top + self.crop, left:left + self.crop]
        return np.ascontiguousarray(x, np.float32)

    def __call__(self, paths):
        return self.transform(self.datum(np.stack([self.load(p) for p in paths])))


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise io.UserError(path, f"not a readable info.json ({e.__class__.__name__})") from None


def _synset_names(path):
    names = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.strip().split(None, 1)
            if parts:
                names.append(parts[1] if len(parts) > 1 else parts[0])
    return names


def _mean_file(transform, data_dir, explicit):
    """The mean file of the TEST data layer: the one in an explicitly given
    data folder (same basename), else the path the layer names."""
    mf = transform.get("mean_file")
    if not mf:
        return None
    p = os.path.join(data_dir, os.path.basename(mf)) if explicit else netdef.resolve(mf)
    if not os.path.isfile(p):
        if explicit:
            raise io.UserError(data_dir, f"holds no {os.path.basename(mf)} (the mean file of "
                                         "the net's TEST data layer)")
        raise io.UserError(mf, "mean file of the net's TEST data layer not found (pass "
                               "--data DIR, the prepared data folder that holds it)")
    return p


def _cifar(info_path, data_dir, common):
    info = _read_json(info_path)
    if info.get("version") not in (1, 2, 3):
        raise io.UserError(info_path, "is not a CIFAR-10 info.json (no version 1/2/3)")
    v = int(info["version"])
    test = info.get("splits", {}).get("test", {}).get("shape", [3, 32, 32])
    pre = Preprocess("cifar10", tuple(test[1:]), info.get("channel_order", "RGB"),
                     info.get("label_names") or io.cifar10_classes(), version=v,
                     gcn_scale=info.get("gcn_scale"), **common)
    if v == 1:
        zf = info.get("zca_file")
        if not zf or not os.path.isfile(os.path.join(data_dir, zf)):
            raise io.UserError(info_path, "version 1 data without its ZCA constants "
                                          "(zca.npz): prepare it again with "
                                          "tools/prepare_cifar10.py --version 1")
        with np.load(os.path.join(data_dir, zf)) as z:
            pre.zca_mean = z["mean"].astype(np.float32)
            pre.zca_matrix = z["matrix"].astype(np.float32)
    return pre


def from_records(transform, data_source="", data_dir=None):
    """The Preprocess of a net from its TEST data layer (`transform`,
    `data_source`) and the prepared data folder (`data_dir`, default: the
    folder of the data layer's source)."""
    explicit = data_dir is not None
    if data_dir is None:
        if not data_source:
            raise io.UserError(None, "the preprocessing is not known: pass --train-val "
                                     "TRAIN_VAL.prototxt (the net's TEST data layer) or --data DIR")
        data_dir = os.path.dirname(netdef.resolve(data_source).rstrip("/"))
    if not os.path.isdir(data_dir):
        raise io.UserError(data_dir, "prepared data folder not found (pass --data DIR)")
    info_path = os.path.join(data_dir, "info.json")
    synsets = os.path.join(data_dir, "synset_words.txt")
    dir_mean = os.path.join(data_dir, "mean.binaryproto")
    if not any(os.path.isfile(p) for p in (info_path, synsets, dir_mean)):
        raise io.UserError(data_dir, "holds neither a CIFAR-10 info.json nor an ImageNet "
                                     "mean.binaryproto / synset_words.txt")
    mean_path = _mean_file(transform, data_dir, explicit)
    mean = netdef.read_mean(mean_path) if mean_path else None
    common = dict(mean=mean, mean_value=list(transform.get("mean_value", [])),
                  crop=int(transform.get("crop_size", 0)),
                  scale=float(transform.get("scale", 1.0)))
    if os.path.isfile(info_path):
        return _cifar(info_path, data_dir, common)
    # convert_imageset resized every image to the mean image's size (also when the
    # net subtracts mean values instead of the mean image)
    resize_from = mean if mean is not None else (
        netdef.read_mean(dir_mean) if os.path.isfile(dir_mean) else None)
    size = tuple(resize_from.shape[1:]) if resize_from is not None else (256, 256)
    names = _synset_names(synsets) if os.path.isfile(synsets) else []
    pre = Preprocess("imagenet", size, "BGR", names, **common)
    if resize_from is None:
        pre.notes.append("no mean.binaryproto tells the resize: images resized to 256 x 256")
    return pre


def from_train_val(path, data_dir=None):
    """The Preprocess recorded by a train_val prototxt's TEST data layer."""
    inet = netdef.inference_net(path, input_shape=(1, 1, 1))   # the shape is not needed
    if not inet.transform and not inet.data_source:
        raise io.UserError(path, "has no TEST data layer to take the preprocessing from")
    return from_records(inet.transform, inet.data_source, data_dir)


def image_files(args):
    """The image files named by the arguments (files, or folders searched
    recursively, sorted), as (path, folder label or None)."""
    out = []
    for a in args:
        if os.path.isdir(a):
            found = []
            for d, dirs, files in os.walk(a):
                dirs.sort()
                for f in sorted(files):
                    if f.lower().endswith(IMAGE_EXTS):
                        p = os.path.join(d, f)
                        rel = os.path.relpath(d, a)
                        found.append((p, None if rel == "." else rel.split(os.sep)[-1]))
            if not found:
                raise io.UserError(a, "folder holds no image files")
            out += found
        elif os.path.isfile(a):
            out.append((a, None))
        else:
            raise io.UserError(a, "image file or folder not found")
    return out
