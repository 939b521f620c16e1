"""GoogLeNet (Inception v1) for ImageNet as the authors' release trains it.

The release's ``googlenet/prototxt/train_val.prototxt`` is BVLC's GoogLeNet
with a batch of 128: LRN stem, nine Inception modules, the two auxiliary
classifiers (loss weight 0.3) and the main one, xavier fillers with bias 0.2.
We write the same layers in the same order with the same names, so models load
by name either way; the deploy net drops the auxiliary classifiers as BVLC's
deploy.prototxt does.

The pattern *selections* are the release's fine-tuning experiments (roles of
the Inception-module convolutions; the stem conv1 7x7 and conv2 3x3 always
stay full precision, as do the auxiliary classifiers):

========== ====================================== ================ ============
selection  binarized convolutions                 release offset   fine-tune lr
========== ====================================== ================ ============
3x3        inception_*/3x3                        0.06             0.005
5x5        inception_*/5x5                        0.05             0.005
3x3-5x5    inception_*/3x3 and inception_*/5x5    0.06             0.01 (*)
projall1x1 inception_*/1x1, 3x3_reduce,           0.09             0.005 (**)
           5x5_reduce and pool_proj
========== ====================================== ================ ============

(*) the release's ``quick_solver_fix_3x3_5x5_pattern.prototxt`` says 0.01
under a comment announcing 0.005; we keep the value it ran with.
(**) its solver was not released; we assume the 3x3 one.

:func:`inception_stack` is shared with the BatchNorm Inception net
(:mod:`.inception_bn`).
"""
from .layers import IMAGENET, XAVIER, NetBuilder, constant

# (name, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj): Szegedy et al. 2015, Table 1.
MODULES = (
    ("3a", 64, 96, 128, 16, 32, 32),
    ("3b", 128, 128, 192, 32, 96, 64),
    ("4a", 192, 96, 208, 16, 48, 64),
    ("4b", 160, 112, 224, 24, 64, 64),
    ("4c", 128, 128, 256, 24, 64, 64),
    ("4d", 112, 144, 288, 32, 64, 64),
    ("4e", 256, 160, 320, 32, 128, 128),
    ("5a", 256, 160, 320, 32, 128, 128),
    ("5b", 384, 192, 384, 48, 128, 128),
)
# After these modules comes a stride-2 max pooling (pool3, pool4).
POOL_AFTER = {"3b": "pool3/3x3_s2", "4e": "pool4/3x3_s2"}
# After these modules an auxiliary classifier branches off (train_val only).
AUX_AFTER = {"4a": "loss1", "4d": "loss2"}

# selection -> (roles binarized, release offset, fine-tune base_lr)
SELECTIONS = {
    "3x3": (frozenset({"3x3"}), 0.06, 0.005),
    "5x5": (frozenset({"5x5"}), 0.05, 0.005),
    "3x3-5x5": (frozenset({"3x3", "5x5"}), 0.06, 0.01),
    "projall1x1": (frozenset({"proj1x1"}), 0.09, 0.005),
}
TRAIN_BATCH, TEST_BATCH = 128, 50


def conv_unit(b, bottom, name, relu_name, nout, kernel, bn, role=None, **kw):
    """Convolution + ReLU (GoogLeNet) or Convolution + BN + Scale + ReLU
    (``bn``: bias dropped, BN names ``<conv>/bn`` and ``<conv>/scale``)."""
    if bn:
        x = b.conv(bottom, name, nout, kernel, bias=False, weight_filler=XAVIER, role=role,
                   lr=((1, 1), None), **kw)
        x = b.bn(x, name + "/bn", name + "/scale")
    else:
        x = b.conv(bottom, name, nout, kernel, weight_filler=XAVIER, bias_filler=constant(0.2),
                   role=role, **kw)
    return b.relu(x, relu_name)


def inception(b, x, spec, bn):
    name, n1, r3, n3, r5, n5, pp = spec
    p = f"inception_{name}/"
    y1 = conv_unit(b, x, p + "1x1", p + "relu_1x1", n1, 1, bn, role="proj1x1")
    y3 = conv_unit(b, x, p + "3x3_reduce", p + "relu_3x3_reduce", r3, 1, bn, role="proj1x1")
    y3 = conv_unit(b, y3, p + "3x3", p + "relu_3x3", n3, 3, bn, role="3x3", pad=1)
    y5 = conv_unit(b, x, p + "5x5_reduce", p + "relu_5x5_reduce", r5, 1, bn, role="proj1x1")
    y5 = conv_unit(b, y5, p + "5x5", p + "relu_5x5", n5, 5, bn, role="5x5", pad=2)
    yp = b.pool(x, p + "pool", "MAX", kernel=3, stride=1, pad=1)
    yp = conv_unit(b, yp, p + "pool_proj", p + "relu_pool_proj", pp, 1, bn, role="proj1x1")
    return b.concat(p + "output", y1, y3, y5, yp)


def aux_classifier(b, x, p):
    x = b.pool(x, p + "/ave_pool", "AVE", kernel=5, stride=3)
    x = conv_unit(b, x, p + "/conv", p + "/relu_conv", 128, 1, bn=False)
    x = b.fc(x, p + "/fc", 1024, XAVIER, constant(0.2))
    x = b.relu(x, p + "/relu_fc")
    x = b.dropout(x, p + "/drop_fc", 0.7)
    score = b.fc(x, p + "/classifier", IMAGENET.num_classes, XAVIER, constant(0))
    b.loss(score, p + "/loss", top=f"{p}/{p}", loss_weight=0.3)
    b.accuracy(score, p + "/top-1", p + "/top-1", test_only=True)
    b.accuracy(score, p + "/top-5", p + "/top-5", top_k=5, test_only=True)


def inception_stack(b, bn, aux):
    """Stem, nine Inception modules and the pooling to 1024 x 1 x 1.

    Without ``bn`` this is GoogLeNet with its LRN stem; with ``bn`` every
    convolution gets BatchNorm + Scale and the LRNs go (they normalise what
    BN already does). ``aux`` adds the auxiliary classifiers (train_val only).
    """
    x = b.data(TRAIN_BATCH, TEST_BATCH)
    x = conv_unit(b, x, "conv1/7x7_s2", "conv1/relu_7x7", 64, 7, bn, pad=3, stride=2)
    x = b.pool(x, "pool1/3x3_s2", "MAX", kernel=3, stride=2)
    if not bn:
        x = b.lrn(x, "pool1/norm1")
    x = conv_unit(b, x, "conv2/3x3_reduce", "conv2/relu_3x3_reduce", 64, 1, bn)
    x = conv_unit(b, x, "conv2/3x3", "conv2/relu_3x3", 192, 3, bn, pad=1)
    if not bn:
        x = b.lrn(x, "conv2/norm2")
    x = b.pool(x, "pool2/3x3_s2", "MAX", kernel=3, stride=2)
    for spec in MODULES:
        x = inception(b, x, spec, bn)
        if aux and spec[0] in AUX_AFTER and not b.deploy:
            aux_classifier(b, x, AUX_AFTER[spec[0]])
        if spec[0] in POOL_AFTER:
            x = b.pool(x, POOL_AFTER[spec[0]], "MAX", kernel=3, stride=2)
    return b.pool(x, "pool5/7x7_s1", "AVE", kernel=7, stride=1)


def build(deploy=False, binarize=None):
    """(NetParameter, names of the binarized layers)."""
    b = NetBuilder("GoogleNet", IMAGENET, deploy, binarize)
    x = inception_stack(b, bn=False, aux=True)
    x = b.dropout(x, "pool5/drop_7x7_s1", 0.4)
    score = b.fc(x, "loss3/classifier", IMAGENET.num_classes, XAVIER, constant(0))
    b.loss(score, "loss3/loss3", loss_weight=1)
    b.accuracy(score, "loss3/top-1", "loss3/top-1", test_only=True)
    b.accuracy(score, "loss3/top-5", "loss3/top-5", top_k=5, test_only=True)
    b.prob(score)
    return b.to_proto(), list(b.pattern_layers)
