#!/usr/bin/env python3
"""Binarize the k x k convolutions of a trained Caffe model into SEP-Nets binary patterns."""
import sys

from sepnets.cli import int_range, parser, run
from sepnets.compress.quant_pattern import MEAN, command


def build_parser():
    p = parser(
        "quant_pattern.py",
        "Binarize the k x k convolutions of a trained Caffe model into binary patterns "
        "(step 2 of SEP-Nets): writes the pattern prototxt for fine-tuning and its "
        "caffemodel. Unselected layers are copied unchanged.",
        ["python tools/quant_pattern.py --model r20.caffemodel --prototxt r20.prototxt "
         "--filter 3x3 --skip conv1 -o r20_pattern",
         "python tools/quant_pattern.py --offset 0.06 --filter 3x3 5x5 --model "
         "bvlc_googlenet_quick_iter_600000.caffemodel --prototxt train_val.prototxt",
         "python tools/quant_pattern.py --model m.caffemodel --prototxt train_val.prototxt "
         "--sweep 0.02:0.09:0.01 --batches 20 -o m_best"])
    p.add_argument("--model", "--models", required=True, metavar="M.caffemodel",
                   help="the trained full-precision model (--models: the release's spelling)")
    p.add_argument("--prototxt", metavar="P.prototxt",
                   help="its net definition (train_val); default: the definition saved in "
                        "the model")
    sel = p.add_mutually_exclusive_group()
    sel.add_argument("--filter", nargs="+", metavar="KxK",
                     help="binarize Convolution layers with these kernels, e.g. 3x3 5x5 "
                          "(default: every kernel larger than 1x1)")
    sel.add_argument("--layers", nargs="+", metavar="NAME",
                     help="binarize exactly these Convolution layers")
    p.add_argument("--skip", nargs="+", default=[], metavar="NAME",
                   help="keep these layers full precision (e.g. conv1)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--scale", choices=[MEAN],
                     help="alpha = mean |W| per filter, as BinaryPatternConvolution "
                          "(the default)")
    how.add_argument("--offset", "--offeset", type=float, metavar="X",
                     help="the release's rule: weights become +X/-X in stock Convolution "
                          "layers frozen with lr_mult 0 (--offeset: the release's spelling)")
    how.add_argument("--sweep", metavar="START:STOP:STEP",
                     help="evaluate the mean scale and each offset on the TEST net's data and "
                          "keep the best, e.g. 0.02:0.09:0.01")
    p.add_argument("--as-layer", action="store_true",
                   help="with --offset/--sweep: write BinaryPatternConvolution scale_mode "
                        "OFFSET instead of stock Convolution layers")
    p.add_argument("--val-prototxt", metavar="V.prototxt",
                   help="sweep: net whose TEST phase reads the validation data (default: "
                        "--prototxt)")
    p.add_argument("--batches", type=int_range(1, 100), default=10,
                   help="sweep: batches to evaluate, 1 to 100, held in memory (10)")
    p.add_argument("--metric", metavar="BLOB",
                   help="sweep: blob to rank by (default: the top-1 Accuracy, else the loss)")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="writes OUT.prototxt and OUT.caffemodel (default: beside the model, "
                        "*_pattern_mean or *_quant_X)")
    return p


def main(argv=None):
    return command(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(run(main))
