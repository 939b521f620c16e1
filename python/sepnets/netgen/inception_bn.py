"""The customized Inception net with BatchNorm (the paper's third experiment).

The release's section on it is empty and the paper's net is not recovered, so
this is our design, kept as close to GoogLeNet as BatchNorm allows so that the
two pattern experiments compare:

* GoogLeNet's stem and nine Inception modules (same widths, names and the
  5x5 branches), every convolution followed by BatchNorm + Scale (names
  ``<conv>/bn``, ``<conv>/scale``) and without bias;
* no LRN (BN normalises), no auxiliary classifiers and no dropout (BN-Inception,
  Ioffe & Szegedy 2015, drops or reduces them too, and they only matter to
  the un-normalised net);
* 7x7 average pooling and the 1000-way ``loss3/classifier`` as in GoogLeNet.

About 7.0 M parameters, like GoogLeNet: BN's gamma and beta (2 per
channel) replace the biases; ``--summary`` prints the exact count.

The pattern variant binarizes the k x k convolutions of the Inception modules
(every ``inception_*/3x3`` and ``inception_*/5x5``); the stem's conv1 7x7 and
conv2 3x3 stay full precision, as in the release's GoogLeNet experiments.
"""
from .googlenet import inception_stack
from .layers import IMAGENET, XAVIER, NetBuilder, constant

PATTERN_ROLES = frozenset({"3x3", "5x5"})


def build(deploy=False, binarize=None):
    """(NetParameter, names of the binarized layers)."""
    b = NetBuilder("Inception-BN", IMAGENET, deploy, binarize)
    x = inception_stack(b, bn=True, aux=False)
    score = b.fc(x, "loss3/classifier", IMAGENET.num_classes, XAVIER, constant(0))
    b.loss(score, "loss3/loss3")
    b.accuracy(score, "loss3/top-1", "loss3/top-1", test_only=True)
    b.accuracy(score, "loss3/top-5", "loss3/top-5", top_k=5, test_only=True)
    b.prob(score)
    return b.to_proto(), list(b.pattern_layers)
