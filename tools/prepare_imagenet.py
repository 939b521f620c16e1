#!/usr/bin/env python3
"""Convert ImageNet class folders into train/val LMDBs, list files and a mean with Caffe's tools."""
import sys

from sepnets.cli import int_range, parser, run
from sepnets.data.imagenet import command


def build_parser():
    p = parser("prepare_imagenet.py",
               "Convert ImageNet class folders (and the ILSVRC-2012 validation images) into\n"
               "LMDBs with Caffe's convert_imageset, plus list files, synset_words.txt and\n"
               "the training mean from compute_image_mean. Grayscale, CMYK and mislabelled\n"
               "files go in as 3-channel colour; unreadable files are listed in skipped.txt.",
               ["python tools/prepare_imagenet.py --train ILSVRC2012/train --val ILSVRC2012/val "
                "--val-labels caffe_ilsvrc12/val.txt --out data/ilsvrc12",
                "python tools/prepare_imagenet.py --train imagenet-sample/train --out /tmp/sample "
                "--resize 256 --strict",
                "python tools/prepare_imagenet.py --sample ../shared/data/imagenet-sample.tar   "
                "# smoke run: data/ilsvrc12"])
    p.add_argument("--train", help="training folder: <wnid>/<image> files")
    p.add_argument("--sample", metavar="TAR|DIR",
                   help="a smoke run from a small sample such as ../shared/data/"
                        "imagenet-sample.tar (train/<wnid>/<image>, synset_words.txt): it "
                        "serves as BOTH the training and the validation set")
    p.add_argument("--val", help="validation folder: flat images (with --val-labels) or "
                   "<wnid>/<image> like --train")
    p.add_argument("--val-labels", help="'FILENAME LABEL' lines; LABEL is the index in sorted "
                   "training wnids (Caffe's val.txt) or a wnid")
    p.add_argument("--out", default="data/ilsvrc12", help="output folder (default: %(default)s)")
    p.add_argument("--resize", type=int, default=256,
                   help="resize every image to RESIZE x RESIZE (default: %(default)s)")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first unreadable file instead of skipping it")
    p.add_argument("--synset-words", help="'wnid name' lines (default: synset_words.txt in or "
                   "beside --train, if present; else wnids only)")
    p.add_argument("--encoded", action="store_true",
                   help="store JPEG-encoded Datums (several times smaller; Caffe decodes them)")
    p.add_argument("--jobs", type=int_range(1, 256), default=None,
                   help="processes for checking images, 1 to 256 (default: CPU count, "
                        "at most 8)")
    p.add_argument("--seed", type=int_range(0, 2**32 - 1), default=0,
                   help="training-list shuffle seed, 0 to 2^32-1 (default: 0)")
    return p


def main(argv=None):
    return command(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(run(main))
