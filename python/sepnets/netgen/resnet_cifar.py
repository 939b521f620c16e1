"""CIFAR-10 ResNets (depth 6n+2) as the authors' release writes ResNet-20.

The layout follows ``resnet20_relu_msra_cifar10.prototxt`` layer for layer, so
that a model trained with the release's file loads into ours by name:
conv1 3x3/16; three stages ``map16``/``map32``/``map64`` of n basic blocks
(``_conv_a`` -> BN -> Scale -> ReLU -> ``_conv_b`` -> BN -> Scale, summed with the
shortcut, ReLU after the sum); the first block of stages 2 and 3 has stride 2
and a *3x3* stride-2 projection shortcut ``_conv_proj`` (+BN/Scale), where He
et al. used zero padding or 1x1 projections; global average pooling; a
10-way ``score``; SoftmaxWithLoss; top-1/top-5 accuracies in both phases.
Every convolution keeps its bias (the release's choice, redundant before BN),
MSRA fillers, lr_mult 1/2 for weights/bias.

Pattern variants binarize the blocks' ``_conv_a``/``_conv_b`` (role "block");
conv1 and the projection shortcuts stay full precision, as in the release's
``resnet20_relu_msra_cifar10_fix_pattern.prototxt``.
"""
from .layers import CIFAR10, MSRA, NetBuilder, constant, gaussian

DEPTHS = (20, 32, 44, 56, 110)
# The release's fine-tune batch (its fix_pattern file) and training batch.
TRAIN_BATCH, FINETUNE_BATCH, TEST_BATCH = 256, 128, 100


def blocks_per_stage(depth):
    """n for depth = 6n + 2; ValueError otherwise."""
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"ResNet depth must be 6n+2 with n >= 1 (8, 14, 20, ...), got {depth}")
    return (depth - 2) // 6


def build(depth, deploy=False, binarize=None, train_batch=TRAIN_BATCH, test_batch=TEST_BATCH):
    """(NetParameter, names of the binarized layers)."""
    n = blocks_per_stage(depth)
    b = NetBuilder(f"ResNet-{depth}-CIFAR10", CIFAR10, deploy, binarize)
    conv = dict(pad=1, weight_filler=MSRA, bias_filler=constant(0))
    x = b.data(train_batch, test_batch)
    x = b.conv(x, "conv1", 16, 3, stride=1, **conv)
    x = b.bn(x, "bn_conv1", "scale_conv1")
    x = b.relu(x, "relu_conv1")
    for stage, c in enumerate((16, 32, 64)):
        for i in range(1, n + 1):
            p = f"map{c}_{i}"
            stride = 2 if stage > 0 and i == 1 else 1
            shortcut = x
            if stride == 2:
                shortcut = b.conv(x, p + "_conv_proj", c, 3, stride=2, **conv)
                shortcut = b.bn(shortcut, p + "_bn_proj", p + "_scale_proj")
            y = b.conv(x, p + "_conv_a", c, 3, stride=stride, role="block", **conv)
            y = b.bn(y, p + "_bn_a", p + "_scale_a")
            y = b.relu(y, p + "_relu_a")
            y = b.conv(y, p + "_conv_b", c, 3, stride=1, role="block", **conv)
            y = b.bn(y, p + "_bn_b", p + "_scale_b")
            x = b.eltsum(p + "_eltsum", shortcut, y)
            x = b.relu(x, p + "_relu_after_sum")
    x = b.pool(x, "pool_global", "AVE", global_pooling=True)
    score = b.fc(x, "score", CIFAR10.num_classes, gaussian(0.01), constant(0))
    b.loss(score, "loss")
    b.accuracy(score, "acc/top1", "acctop1", top_k=1)
    b.accuracy(score, "acc/top5", "acctop5", top_k=5)
    b.prob(score)
    return b.to_proto(), list(b.pattern_layers)
