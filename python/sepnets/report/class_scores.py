"""Accuracy per class, under Caffe's tie rule and without it, and the class
channels that say nothing, from a model's scores on its TEST data.

Why: Caffe's ``Accuracy`` layer ranks every class whose score is >= the
label's above the label (ties go against it). A class channel that is the
same on every image, e.g. dead behind a ReLU as in SqueezeNet's
``relu_conv10`` before the global pooling, then scores its images neither
top-1 nor top-5 whatever the others do, and a log's top-5 can sit far below
top-1's natural ceiling (CIFAR-10 SqueezeNet: 0.775 where strict ranking
gives 0.99). The log cannot show why; this report does: both rules, per
class, and the constant channels.
"""
from dataclasses import dataclass, field

import numpy as np

from ..caffeio.blobs import model_arrays
from ..caffeio.proto import caffe_pb2, in_phase, read_caffemodel, read_prototxt
from ..caffeio.pycaffe import open_net, set_net_params
from ..errors import UserError
from ..fileio import check_output_path, refuse_overwrite, write_text_atomic


@dataclass
class ClassRow:
    label: int
    images: int
    caffe: dict        # {k: top-k accuracy, ties against the label (Caffe's Accuracy)}
    strict: dict       # {k: top-k accuracy, only strictly higher scores ranked above}


@dataclass
class ClassReport:
    images: int
    ks: tuple
    caffe: dict
    strict: dict
    rows: list = field(default_factory=list)
    constant: dict = field(default_factory=dict)   # {channel: its one value}


def _ranks(scores, labels):
    """(classes scoring >= the label's, other than it; classes scoring > it)."""
    true = scores[np.arange(len(labels)), labels][:, None]
    return (scores >= true).sum(1) - 1, (scores > true).sum(1)


def tally(scores, labels, ks=(1, 5)):
    """A ClassReport of N x C `scores` against N integer `labels`."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64)
    if scores.ndim != 2 or len(scores) != len(labels) or not len(labels):
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} do not pair up")
    if labels.min() < 0 or labels.max() >= scores.shape[1]:
        raise ValueError(f"labels outside 0..{scores.shape[1] - 1}")
    ks = tuple(k for k in ks if k <= scores.shape[1])
    ge, gt = _ranks(scores, labels)

    def acc(rank, mask=slice(None)):
        return {k: float((rank[mask] < k).mean()) for k in ks}
    report = ClassReport(len(labels), ks, acc(ge), acc(gt))
    for c in range(scores.shape[1]):
        m = labels == c
        if m.any():
            report.rows.append(ClassRow(c, int(m.sum()), acc(ge, m), acc(gt, m)))
    spread = scores.max(0) - scores.min(0)
    report.constant = {int(c): float(scores[0, c]) for c in np.flatnonzero(spread == 0)}
    return report


def accuracy_blobs(net, source):
    """(scores blob, label blob) of the first TEST-phase Accuracy layer."""
    test = caffe_pb2().TEST
    for layer in net.layer:
        if layer.type == "Accuracy" and in_phase(layer, test) and len(layer.bottom) >= 2:
            return layer.bottom[0], layer.bottom[1]
    raise UserError(source, "has no TEST-phase Accuracy layer to take the scores and labels "
                            "from (name them with --scores and --labels)")


def collect(net_path, model_path, batches, scores_blob=None, labels_blob=None):
    """(N x C scores, N labels, scores blob, labels blob) of the TEST net with
    the model's weights, over `batches` batches of its data layer. Streams
    the batches: pack_model.forward_outputs keeps every input batch to replay
    it, which a whole test set (of ImageNet crops, say) need not fill memory with."""
    net = read_prototxt(net_path)
    if scores_blob is None or labels_blob is None:
        s, lab = accuracy_blobs(net, net_path)
        scores_blob, labels_blob = scores_blob or s, labels_blob or lab
    arrays = model_arrays(net, read_caffemodel(model_path), net_path, model_path)
    cnet = open_net(net, "TEST", net_path)
    set_net_params(cnet, arrays, model_path)
    for b in (scores_blob, labels_blob):
        if b not in cnet.blobs:
            raise UserError(net_path, f"the TEST net has no blob '{b}'")
    got_s, got_l = [], []
    for _ in range(batches):
        cnet.forward()
        s = cnet.blobs[scores_blob].data
        got_s.append(s.reshape(s.shape[0], -1).copy())
        got_l.append(cnet.blobs[labels_blob].data.reshape(-1).copy())
    return np.concatenate(got_s), np.concatenate(got_l), scores_blob, labels_blob


def markdown(report, title, names=None, digits=4):
    """The report as a Markdown section."""
    def name(c):
        return names[c] if names and c < len(names) else str(c)

    def cells(d):
        return " | ".join(f"{d[k]:.{digits}f}" for k in report.ks)
    ks = report.ks
    head = " | ".join(f"top-{k}, Caffe" for k in ks) + " | " + \
        " | ".join(f"top-{k}, strict" for k in ks)
    lines = [f"# {title}", "",
             f"{report.images} images. *Caffe*: as Caffe's `Accuracy` layer counts (a class "
             "whose score ties the label's ranks above it); *strict*: only strictly higher "
             "scores rank above the label.", "",
             f"| class | images | {head} |", "|---|---:|" + "---:|" * (2 * len(ks)),
             f"| all | {report.images} | {cells(report.caffe)} | {cells(report.strict)} |"]
    for r in report.rows:
        lines.append(f"| {name(r.label)} | {r.images} | {cells(r.caffe)} | {cells(r.strict)} |")
    lines.append("")
    if report.constant:
        lines.append("Class channels with one value on every image (dead; under Caffe's rule "
                     "an image of such a class counts in top-k only when fewer than k other "
                     "classes score at least that value): "
                     + ", ".join(f"{name(c)} ({v:g})" for c, v in sorted(report.constant.items()))
                     + ".")
    else:
        lines.append("No class channel has one value on every image.")
    return "\n".join(lines) + "\n"


def command(args):
    if args.out:  # before the long evaluation, not after it
        refuse_overwrite(args.out, args.net, args.model)
        check_output_path(args.out)
    scores, labels, sblob, lblob = collect(args.net, args.model, args.batches,
                                           args.scores, args.labels)
    try:
        report = tally(scores, labels)
    except ValueError as e:
        raise UserError(args.net, f"blobs '{sblob}' and '{lblob}': {e}") from e
    names = args.names.split(",") if args.names else None
    if args.names == "cifar10":
        from ..data.cifar10_sources import CLASSES
        names = list(CLASSES)
    text = markdown(report, f"Per-class accuracy: {args.model}", names)
    print(text, end="")
    if args.out:
        write_text_atomic(args.out, text)
    return 0
