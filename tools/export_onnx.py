#!/usr/bin/env python3
"""Export a Caffe net and its weights to ONNX, keeping pattern signs as low-bit integers."""
import sys

from sepnets.cli import parser, run
from sepnets.deploy.onnx_export import PATTERN_BITS, command


def build_parser():
    p = parser(
        "export_onnx.py",
        "Export a Caffe net and its weights to ONNX. Pattern layers (BinaryPattern-\n"
        "Convolution, and stock Convolutions holding baked +/-alpha filters) store their\n"
        "signs as INT2 (or --pattern-bits) with the per-filter alpha as the scale of a\n"
        "DequantizeLinear; BatchNorm + Scale fold into the convolution before them.\n"
        "A train_val prototxt works too (TEST phase; data layers become the input).",
        ["python tools/export_onnx.py prototxt/cifar10-resnet20-pattern-mean/deploy.prototxt "
         "r20_pattern.caffemodel -o r20.onnx",
         "python tools/export_onnx.py prototxt/cifar10-resnet20-fix-pattern/train_val.prototxt "
         "models/cifar10-resnet20-12000-refined/cifar10-resnet20-12000-refined.caffemodel "
         "-o r20_fix.onnx --pattern-bits 4",
         "python tools/export_onnx.py prototxt/sepnet-b/deploy.prototxt sepnet_b.caffemodel "
         "-o sepnet_bq.onnx --bq",
         "python tools/export_onnx.py --size-report docs/deployment.md"])
    p.add_argument("prototxt", nargs="?", help="net definition (deploy, legacy input: header, "
                   "or train_val)")
    p.add_argument("caffemodel", nargs="?", help="trained weights")
    p.add_argument("-o", "--output", help="the .onnx file to write")
    p.add_argument("--pattern-bits", type=int, choices=PATTERN_BITS, default=2,
                   help="integer width of pattern signs (32: plain fp32 filters; default 2)")
    p.add_argument("--bq", action="store_true",
                   help="SEP-Net-BQ: 1x1 convolution and fully connected weights as INT8 "
                        "with a per-channel scale")
    p.add_argument("--input-shape", metavar="C,H,W",
                   help="input shape for a train_val whose data layer does not tell it")
    p.add_argument("--size-report", metavar="OUT.md",
                   help="instead: write the size table of every generated net and the "
                        "trained models in models/ (caffemodel, .sepnet, .onnx fp32/INT4/INT2) "
                        "to OUT.md, a new file, or between the size-report markers of an "
                        "existing one")
    return p


def main(argv=None):
    return command(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(run(main))
