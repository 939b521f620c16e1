#!/usr/bin/env python3
"""Pack a Caffe model into a compact .sepnet file and unpack it back to a caffemodel."""
import sys

from sepnets.cli import int_range, parser, run
from sepnets.compress.pack_model import command


def build_parser():
    p = parser("pack_model.py",
               "Pack a Caffe model into a .sepnet file (binary patterns as bits, fp32 alpha, "
               "other weights fp32 or 8-bit with --bq) and unpack it back to a caffemodel.",
               ["python tools/pack_model.py pack r20_pattern.prototxt r20_pattern.caffemodel "
                "-o r20.sepnet",
                "python tools/pack_model.py pack sepnet_b.prototxt sepnet_b.caffemodel --bq "
                "-o sepnet_bq.sepnet",
                "python tools/pack_model.py unpack r20_pattern.prototxt r20.sepnet "
                "-o r20_unpacked.caffemodel",
                "python tools/pack_model.py info r20.sepnet",
                "python tools/pack_model.py compare r20_pattern.prototxt "
                "r20_pattern.caffemodel r20.sepnet --batches 5"])
    sub = p.add_subparsers(dest="command", metavar="{pack,unpack,info,compare}")
    sub.required = True
    pk = sub.add_parser("pack", help="caffemodel -> .sepnet")
    pk.add_argument("prototxt")
    pk.add_argument("caffemodel")
    pk.add_argument("-o", "--output", help="output .sepnet (default: beside the caffemodel)")
    pk.add_argument("--bq", action="store_true",
                    help="store 1x1 conv and FC weights as uint8 (SEP-Net-BQ)")
    up = sub.add_parser("unpack", help=".sepnet -> caffemodel")
    up.add_argument("prototxt")
    up.add_argument("packed")
    up.add_argument("-o", "--output", required=True, help="output .caffemodel")
    inf = sub.add_parser("info", help="print a .sepnet file's header and layer records")
    inf.add_argument("packed")
    cp = sub.add_parser("compare", help="max |output difference| between a caffemodel and "
                                        "a .sepnet on the TEST net")
    cp.add_argument("prototxt")
    cp.add_argument("caffemodel")
    cp.add_argument("packed")
    cp.add_argument("--batches", type=int_range(1, 100), default=2,
                    help="batches of the TEST data (or of noise for Input layers), 1 to 100, "
                         "held in memory")
    cp.add_argument("--blob", nargs="+", metavar="NAME",
                    help="blobs to compare (default: the net's outputs), e.g. the logits")
    return p


def main(argv=None):
    return command(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(run(main))
