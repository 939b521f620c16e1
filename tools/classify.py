#!/usr/bin/env python3
"""Classify images with a trained net in Caffe or onnxruntime, preprocessed as in training."""
import sys

from sepnets.cli import parser, run
from sepnets.deploy.classify import command


def build_parser():
    p = parser(
        "classify.py",
        "Classify images with a trained net (Caffe or onnxruntime), preprocessed as its\n"
        "training data was (the TEST data layer of its train_val and the prepared data\n"
        "folder's records: CIFAR-10 versions 1/2/3, ImageNet mean and crop). Images in\n"
        "class-named folders also get an accuracy.",
        ["python tools/classify.py --model prototxt/cifar10-resnet20-pattern-mean/"
         "train_val.prototxt models/cifar10-resnet20-ste-m20-bn/cifar10-resnet20-ste-m20-bn."
         "caffemodel cifar10-test/ --compare",
         "python tools/classify.py --model r20.onnx cat.png dog.jpg --top 3",
         "python tools/classify.py --model prototxt/googlenet/deploy.prototxt g.caffemodel "
         "--train-val prototxt/googlenet/train_val.prototxt --data data/ilsvrc12 img.jpg"])
    p.add_argument("images", nargs="*", metavar="IMAGES|FOLDER",
                   help="image files, or folders searched recursively")
    p.add_argument("--model", nargs="+", required=True, metavar="FILE",
                   help="NET.prototxt MODEL.caffemodel and/or NET.onnx")
    p.add_argument("--backend", choices=("caffe", "onnxruntime"),
                   help="default: caffe when a caffemodel is given, else onnxruntime "
                        "(without an .onnx file the net is exported in memory)")
    p.add_argument("--compare", action="store_true",
                   help="run both backends and print their largest difference")
    p.add_argument("--top", type=int, default=5, help="classes per image (default 5)")
    p.add_argument("--batch", type=int, default=100, help="images per forward (default 100)")
    p.add_argument("--train-val", metavar="PROTOTXT",
                   help="the train_val whose TEST data layer gives the preprocessing (default: "
                        "the model's own prototxt, or what the ONNX export recorded)")
    p.add_argument("--data", metavar="DIR",
                   help="the prepared data folder (info.json / mean / synset_words.txt); "
                        "default: the folder of the TEST data layer's source")
    p.add_argument("--max-rows", type=int, default=100,
                   help="rows of the top-k table (default 100; -1: all)")
    p.add_argument("--json", metavar="OUT", help="also write the scores and summary as JSON")
    return p


def main(argv=None):
    return command(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(run(main))
