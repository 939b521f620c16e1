"""Parameter counts of the generated nets, as Caffe allocates them, against
the published architectures computed independently here from their tables."""
import os

import pytest

from sepnets.netgen import catalog as cat
from sepnets.netgen import params

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BY = cat.by_name()


def _count(name):
    e = BY[name]
    return params.count(os.path.join(REPO, e.deploy), e.pattern_layers)


# ResNet paper (He et al. 2016, Table 6): params of the CIFAR-10 ResNets, which
# use parameter-free shortcuts; the release adds 3x3 projections at 2 stages.
RESNET_PAPER = {20: 0.27, 32: 0.46, 44: 0.66, 56: 0.85, 110: 1.7}


@pytest.mark.parametrize("depth", sorted(RESNET_PAPER))
def test_resnet_counts_match_the_resnet_paper(caffe, depth):
    c = _count(f"cifar10-resnet{depth}")
    n = (depth - 2) // 6
    projections = 3 * 3 * (16 * 32 + 32 * 64)
    weights = c["kxk"] + c["1x1"] + c["fc"]
    # conv1, 2n 3x3 convs per stage (the first of stages 2 and 3 widening), FC
    expected = 3 * 16 * 9 + sum(
        9 * (cin * c_ + (2 * n - 1) * c_ * c_)
        for cin, c_ in ((16, 16), (16, 32), (32, 64))) + 64 * 10
    assert weights - projections == expected
    digits = 1 if depth == 110 else 2
    assert round(expected / 1e6, digits) == RESNET_PAPER[depth]
    # biases and BN scales add about 1 %
    assert abs((c["total"] - projections) / (RESNET_PAPER[depth] * 1e6) - 1) < 0.02
    assert c["1x1"] == 0 and c["fc"] == 640


def _googlenet_count():
    """BVLC GoogLeNet (deploy, with biases) from Szegedy et al. 2015, Table 1."""
    table = [  # in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj
        (192, 64, 96, 128, 16, 32, 32), (256, 128, 128, 192, 32, 96, 64),
        (480, 192, 96, 208, 16, 48, 64), (512, 160, 112, 224, 24, 64, 64),
        (512, 128, 128, 256, 24, 64, 64), (512, 112, 144, 288, 32, 64, 64),
        (528, 256, 160, 320, 32, 128, 128), (832, 256, 160, 320, 32, 128, 128),
        (832, 384, 192, 384, 48, 128, 128)]

    def conv(cin, cout, k):
        return cin * cout * k * k + cout
    total = conv(3, 64, 7) + conv(64, 64, 1) + conv(64, 192, 3) + 1024 * 1000 + 1000
    for cin, a, r3, b, r5, c, p in table:
        total += conv(cin, a, 1) + conv(cin, r3, 1) + conv(r3, b, 3) + conv(cin, r5, 1) + \
            conv(r5, c, 5) + conv(cin, p, 1)
    return total


def test_googlenet_count_matches_bvlc(caffe):
    assert _count("googlenet")["total"] == _googlenet_count()
    for sel in ("3x3", "5x5"):
        c = _count(f"googlenet-{sel}-pattern-offset")
        assert 0 < c["binarized"] < c["kxk"]
    c = _count("googlenet-projall1x1-pattern-mean")
    assert c["binarized"] < c["1x1"] and c["1x1"] - c["binarized"] == 64 * 64  # conv2 reduce


def test_sepnet_r_is_1_3_million(caffe):
    r, b = _count("sepnet-r"), _count("sepnet-b")
    assert abs(r["total"] / 1.3e6 - 1) <= 0.05
    # SEP-Net-B: every k x k conv but conv1 (5x5, 3 -> 64) binarized, one alpha per filter
    assert b["binarized"] == r["kxk"] - 5 * 5 * 3 * 64
    net = BY["sepnet-b"].net(True)
    alphas = sum(lp.convolution_param.num_output for lp in net.layer
                 if lp.name in BY["sepnet-b"].pattern_layers)
    assert b["total"] - r["total"] == alphas


def test_mobilenet_and_squeezenet_match_their_papers(caffe):
    m = _count("mobilenet-0.5")
    widths = [16, 32, 64, 64, 128, 128, 256, 256, 256, 256, 256, 256, 512, 512]
    dw = sum(9 * c for c in widths[:-1])
    pw = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    assert (m["kxk"], m["1x1"], m["fc"]) == (3 * 16 * 9 + dw, pw, 512 * 1000)
    assert round((m["kxk"] + m["1x1"] + m["fc"]) / 1e6, 2) == 1.32     # Howard et al. 2017
    s = _count("squeezenet")
    fires = [(96, 16, 64), (128, 16, 64), (128, 32, 128), (256, 32, 128), (256, 48, 192),
             (384, 48, 192), (384, 64, 256), (512, 64, 256)]
    expected = 3 * 96 * 49 + 96 + 512 * 1000 + 1000 + sum(
        cin * sq + sq + sq * e + e + sq * e * 9 + e for cin, sq, e in fires)
    assert s["total"] == expected
    assert round(expected / 1e6, 2) == 1.25                              # Iandola et al. 2016


def test_inception_bn_keeps_googlenet_weights(caffe):
    g, i = _count("googlenet"), _count("inception-bn")
    assert (i["kxk"], i["1x1"], i["fc"]) == (g["kxk"], g["1x1"], g["fc"])
    p = _count("inception-bn-pattern-mean")
    assert p["binarized"] == g["kxk"] - (3 * 64 * 49 + 64 * 192 * 9)   # all but the stem


def test_summary_prints_the_tables():
    from sepnets.netgen.cli import summary
    text = summary(cat.catalog())
    for e in cat.catalog():
        assert f"| {e.name} |" in text
    assert "SEP-Net-R, layer by layer" in text and "| module5/svd1 |" in text
    assert "reconstructed" in text and "recovered" in text
