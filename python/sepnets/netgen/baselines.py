"""The small ImageNet networks SEP-Net is compared with, in Caffe layers, so
that one tool counts and sizes all of them the same way.

MobileNet v1, width 0.5, 224 x 224 (Howard et al. 2017; 1.32 M parameters):
conv1 3x3/2 with 16 filters, then 13 depthwise-separable pairs
``convN/dw`` (3x3, ``group`` = channels) + ``convN/sep`` (1x1), each
convolution followed by BatchNorm + Scale + ReLU and without bias, 7 x 7
global average pooling ``pool6`` and the FC ``fc7``. Layer names follow the
widely used Caffe port of MobileNet (shicai/MobileNet-Caffe) with the widths
halved.

SqueezeNet 1.0 (Iandola et al. 2016; 1,248,424 parameters), as DeepScale's
Caffe release: conv1 7x7/2 96, Fire modules fire2..fire9 (``squeeze1x1``,
``expand1x1``, ``expand3x3``, ``concat``), max pooling after conv1, fire4 and
fire8, dropout 0.5, the 1x1 ``conv10`` classifier and global average pooling;
no BatchNorm; xavier fillers (conv10: gaussian std 0.01); no ``param`` specs.
It is fed 224 x 224 crops like every ImageNet net here (DeepScale used 227);
with Caffe's ceil-mode pooling this only shrinks the feature maps by one pixel
and changes no parameter.

CIFAR-10 forms (``cifar10-mobilenet``, ``cifar10-squeezenet``; SEP-Net's is
in :mod:`.sepnet`), for the small-network comparison on real data. One rule
for all three nets, the usual way ImageNet nets are carried to 32 x 32:

* the bodies keep their widths, groups and modules, so they keep the
  parameter counts the paper matched them at; only the classifier shrinks to
  10 classes (MobileNet's and SEP-Net's 512 x 1000 FC were 0.51 M of their
  1.3 M), which leaves SEP-Net-R and MobileNet within 0.01 % of each other and
  SqueezeNet 11 % smaller, as in the paper (1.3 / 1.3 / 1.2 M);
* the stem works at full resolution: stride 1 and a 3x3 kernel (SqueezeNet's
  7x7 and SEP-Net's 5x5 were sized for 224 x 224 images; MobileNet's is
  3x3 already);
* the last feature map is 4 x 4 (ImageNet: 7 x 7, SqueezeNet 13 x 13): with
  the stem's stride gone, SEP-Net and MobileNet also drop their last
  downsampling (conv5 / conv5_6's depthwise conv at stride 1); SqueezeNet's
  three max poolings take 32 to 4 by themselves;
* batch 128 (100 for tests), the CIFAR-10 data of the ResNets (version 3),
  and one common solver (:func:`.solvers.cifar_small`);
* SqueezeNet gets BatchNorm + Scale after every convolution but the
  classifier conv10 (and loses those convolutions' biases), as the other two
  nets have. Without it SqueezeNet 1.0 did not start learning at the common
  solver's learning rate: in a short check here (batch 128, fixed lr) its
  training loss was still ln 10 = 2.303, the untrained value, at iteration
  40 with base_lr 0.1 and at iteration 80 with 0.04, where with BatchNorm it
  was 2.20 at 40 and 2.12 at 50; a per-net learning rate would break the
  common schedule. The Scales add 5,952 learned numbers and the 2,976 biases
  go: +0.4 % parameters.

``cifar10-squeezenet-linear`` is the same net without the ReLU on conv10's
class scores (no parameter changes): a second try at the baseline after two
class channels died behind that ReLU in the recorded run (see
:func:`squeezenet`).

Multiply-adds per 32 x 32 image (``gen_prototxt.py --summary``): SEP-Net-R
60 M, MobileNet 17 M, SqueezeNet 53 M, ResNet-20 43 M: the comparison is at
equal parameters, as the paper's is, not at equal compute.
"""
from .layers import CIFAR10, IMAGENET, MSRA, XAVIER, NetBuilder, constant, gaussian

# (name, out channels, stride) of the depthwise-separable pairs of MobileNet 0.5.
MOBILENET_05 = (
    ("2_1", 32, 1), ("2_2", 64, 2), ("3_1", 64, 1), ("3_2", 128, 2), ("4_1", 128, 1),
    ("4_2", 256, 2), ("5_1", 256, 1), ("5_2", 256, 1), ("5_3", 256, 1), ("5_4", 256, 1),
    ("5_5", 256, 1), ("5_6", 512, 2), ("6", 512, 1),
)
# (name, squeeze 1x1, expand 1x1, expand 3x3) of SqueezeNet 1.0's Fire modules.
SQUEEZENET_FIRES = (
    ("fire2", 16, 64, 64), ("fire3", 16, 64, 64), ("fire4", 32, 128, 128),
    ("fire5", 32, 128, 128), ("fire6", 48, 192, 192), ("fire7", 48, 192, 192),
    ("fire8", 64, 256, 256), ("fire9", 64, 256, 256),
)
SQUEEZENET_POOL_AFTER = {"fire4": "pool4", "fire8": "pool8"}
TRAIN_BATCH, TEST_BATCH = 128, 50
CIFAR10_TEST_BATCH = 100
# The CIFAR-10 forms' strides that differ from ImageNet's (see the docstring).
MOBILENET_CIFAR10_STRIDES = {"conv1": 1, "5_6": 1}


def _tail(b, score):
    b.loss(score, "loss")
    b.accuracy(score, "top-1", "top-1", test_only=True)
    b.accuracy(score, "top-5", "top-5", top_k=5, test_only=True)
    b.prob(score)


def _batches(dataset):
    return (TRAIN_BATCH, CIFAR10_TEST_BATCH if dataset is CIFAR10 else TEST_BATCH)


def mobilenet(deploy=False, binarize=None, dataset=IMAGENET):
    """(NetParameter, []) of MobileNet v1 0.5 (`dataset` CIFAR10: its CIFAR-10 form)."""
    cifar = dataset is CIFAR10
    strides = MOBILENET_CIFAR10_STRIDES if cifar else {}
    b = NetBuilder("MobileNet-0.5" + ("-CIFAR10" if cifar else ""), dataset, deploy, binarize)

    def unit(x, name, relu_name, nout, kernel, stride=None, pad=None, group=None):
        x = b.conv(x, name, nout, kernel, stride=stride, pad=pad, group=group, bias=False,
                   weight_filler=MSRA, lr=((1, 1), None), role="dw" if group else None)
        x = b.bn(x, name + "/bn", name + "/scale")
        return b.relu(x, relu_name)

    x = b.data(*_batches(dataset))
    x = unit(x, "conv1", "relu1", 16, 3, stride=strides.get("conv1", 2), pad=1)
    c = 16
    for name, nout, stride in MOBILENET_05:
        x = unit(x, f"conv{name}/dw", f"relu{name}/dw", c, 3, stride=strides.get(name, stride),
                 pad=1, group=c)
        x = unit(x, f"conv{name}/sep", f"relu{name}/sep", nout, 1)
        c = nout
    x = b.pool(x, "pool6", "AVE", global_pooling=True)
    _tail(b, b.fc(x, "fc7", dataset.num_classes, MSRA, constant(0)))
    return b.to_proto(), list(b.pattern_layers)


def squeezenet(deploy=False, binarize=None, dataset=IMAGENET, class_relu=True):
    """(NetParameter, []) of SqueezeNet 1.0 (`dataset` CIFAR10: its CIFAR-10 form).

    `class_relu` False drops ``relu_conv10``, the ReLU on the class scores
    (``cifar10-squeezenet-linear``): with it, a class channel whose scores
    go negative for every image stops getting gradient and stays at 0, which
    killed two of ten channels in the recorded CIFAR-10 run; without it the
    scores reach the softmax as every other net's do."""
    cifar = dataset is CIFAR10
    name = "SqueezeNet-1.0" + ("-CIFAR10" if cifar else "") + ("" if class_relu else "-linear")
    b = NetBuilder(name, dataset, deploy, binarize)

    def unit(x, name, relu_name, nout, kernel, filler=XAVIER, bn=cifar, **kw):
        x = b.conv(x, name, nout, kernel, weight_filler=filler, lr=None, bias=not bn,
                   role="kxk" if kernel > 1 else None, **kw)
        if bn:
            x = b.bn(x, name + "/bn", name + "/scale")
        return b.relu(x, relu_name) if relu_name else x

    x = b.data(*_batches(dataset))
    if cifar:
        x = unit(x, "conv1", "relu_conv1", 96, 3, stride=1, pad=1)
    else:
        x = unit(x, "conv1", "relu_conv1", 96, 7, stride=2)
    x = b.pool(x, "pool1", "MAX", kernel=3, stride=2)
    for name, s1, e1, e3 in SQUEEZENET_FIRES:
        s = unit(x, f"{name}/squeeze1x1", f"{name}/relu_squeeze1x1", s1, 1)
        y1 = unit(s, f"{name}/expand1x1", f"{name}/relu_expand1x1", e1, 1)
        y3 = unit(s, f"{name}/expand3x3", f"{name}/relu_expand3x3", e3, 3, pad=1)
        x = b.concat(f"{name}/concat", y1, y3)
        if name in SQUEEZENET_POOL_AFTER:
            x = b.pool(x, SQUEEZENET_POOL_AFTER[name], "MAX", kernel=3, stride=2)
    x = b.dropout(x, "drop9", 0.5)
    x = unit(x, "conv10", "relu_conv10" if class_relu else None, dataset.num_classes, 1,
             filler=gaussian(0.01), bn=False)
    _tail(b, b.pool(x, "pool10", "AVE", global_pooling=True))
    return b.to_proto(), list(b.pattern_layers)
