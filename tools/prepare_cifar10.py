#!/usr/bin/env python3
"""Convert CIFAR-10 (official archives or image folders) into LMDBs for one preprocessing version."""
import sys

from sepnets.cli import int_range, parser, run
from sepnets.data import cifar10_sources as sources
from sepnets.data.cifar10 import VERSIONS, command


def build_parser():
    p = parser("prepare_cifar10.py",
               "Convert CIFAR-10 into train/test LMDBs and mean files for one or more\n"
               "of the release's three preprocessing versions.\n\n"
               + "\n".join(f"  version {v}: {d}" for v, d in VERSIONS.items()),
               ["python tools/prepare_cifar10.py --source cifar-10-binary.tar.gz --version 3",
                "python tools/prepare_cifar10.py --source ../shared/data/cifar10-jpeg.tar.gz "
                "--out data/cifar10 --version 1 2 3",
                "python tools/prepare_cifar10.py --version 2   # downloads the official archive"])
    p.add_argument("--source", help="official binary or Python archive (.tar.gz), either one "
                   "unpacked, or an image-folder tree train/<class>/*, test/<class>/* (packed or "
                   "not); omitted: download the official binary archive from --url")
    p.add_argument("--out", default="data/cifar10",
                   help="output folder; writes OUT/v<version>/ (default: %(default)s)")
    p.add_argument("--version", type=int, nargs="+", choices=sorted(VERSIONS), default=[3],
                   help="preprocessing version(s) (default: 3, the release's data)")
    p.add_argument("--url", default=sources.OFFICIAL_URL,
                   help="where to download from when --source is omitted (default: %(default)s)")
    p.add_argument("--seed", type=int_range(0, 2**32 - 1), default=0,
                   help="training-set shuffle seed, 0 to 2^32-1 (default: 0)")
    return p


def main(argv=None):
    return command(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(run(main))
