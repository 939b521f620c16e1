"""The numbers the paper and its release report, kept in one place so that
every table that sets them beside ours (the runner's Ref column, the size
tables, the comparison tables of :mod:`.comparisons`) quotes the same
figures, always labelled as theirs. Source: ``shared/reference/PAPER_NOTES.md``
section 4 (the release README's CIFAR-10 table; the paper's small-network
table on ImageNet). Nothing here is ours: our numbers come from the logs.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class ReleaseResNet:
    """One row of the release README's CIFAR-10 table (top-1, top-5)."""
    depth: int
    ref: float          # the ResNet paper's top-1 (the release's "Ref" column)
    full: tuple         # full precision
    bipattern: tuple    # right after binarization
    refined: tuple      # after fine-tuning with fixed patterns


#: The release README's CIFAR-10 table (80,000 iterations at batch 256 on a GPU).
RELEASE_CIFAR10 = {r.depth: r for r in (
    ReleaseResNet(20, 0.9125, (0.9118, 0.9974), (0.1546, 0.5104), (0.8649, 0.9941)),
    ReleaseResNet(32, 0.9249, (0.9276, 0.9972), (0.2634, 0.6932), (0.9021, 0.9962)),
    ReleaseResNet(44, 0.9283, (0.9283, 0.9982), (0.4825, 0.8765), (0.9145, 0.9965)),
    ReleaseResNet(56, 0.9303, (0.9375, 0.9977), (0.5382, 0.9574), (0.9302, 0.9971)),
)}
RELEASE_LABEL = "release README"

#: The release README's "Ref" column by full net, as the runner records it in
#: experiment.json (``reference``).
REFERENCE = {f"cifar10-resnet{d}": {"top1": r.ref} for d, r in RELEASE_CIFAR10.items()}


@dataclass(frozen=True)
class PaperSmallNet:
    """One row of the paper's small-network table (ImageNet); None: not given."""
    name: str
    params_m: float     # millions of parameters
    size_mb: float      # MB = 10^6 bytes
    top1_pct: float     # ImageNet top-1, %


#: The paper's small networks on ImageNet, in the paper's order.
PAPER_SMALL = {r.name: r for r in (
    PaperSmallNet("SEP-Net-R", 1.3, 5.2, 65.8),
    PaperSmallNet("SEP-Net-B", None, 4.2, 63.7),
    PaperSmallNet("SEP-Net-BQ", None, 1.3, 63.5),
    PaperSmallNet("MobileNet 0.5", 1.3, 5.2, 63.7),
    PaperSmallNet("SqueezeNet", 1.2, 4.8, 60.4),
)}
PAPER_LABEL = "paper, ImageNet"

#: The paper's sizes of its small ImageNet nets (the size tables' Paper column).
PAPER_SIZES_MB = {n: r.size_mb for n, r in PAPER_SMALL.items()}
