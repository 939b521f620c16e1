"""Which experiments exist: one per full-precision net of the network catalog
that has pattern variants, grouped here so that the runner knows the nets of
each step (the full net, the MEAN pattern net, the release-style fix-pattern
net and the OFFSET net).
"""
import os
from dataclasses import dataclass

from .nets import data_path

# The release README's "Ref" column (the ResNet paper's top-1 on CIFAR-10).
REFERENCE = {"cifar10-resnet20": {"top1": 0.9125}, "cifar10-resnet32": {"top1": 0.9249},
             "cifar10-resnet44": {"top1": 0.9283}, "cifar10-resnet56": {"top1": 0.9303}}


@dataclass
class Experiment:
    name: str
    full: object                 # catalog Entry, kind full
    mean: object                 # pattern entry, scale_mode MEAN
    fix: object = None           # fix-pattern entry (offsets), if the catalog has one
    offset_entry: object = None  # pattern entry, scale_mode OFFSET
    selection: str = None

    @property
    def dataset(self):
        return self.full.dataset

    @property
    def release_offset(self):
        for e in (self.fix, self.offset_entry):
            if e is not None and e.offset is not None:
                return e.offset
        return None

    @property
    def label(self):
        f = self.full
        if f.family == "resnet":
            return f"ResNet-{f.depth}"
        if f.family == "googlenet":
            return f"GoogLeNet {self.selection}"
        if f.family == "sepnet":
            return "SEP-Net"
        return f.title.split(" (")[0]


def _experiment_name(parent, selection):
    if parent.family == "sepnet":
        return "sepnet"
    return f"{parent.name}-{selection}" if selection else parent.name


def experiments(entries=None):
    """{name: Experiment} for every full net of the catalog with pattern variants."""
    from ..netgen import catalog
    entries = catalog.catalog() if entries is None else entries
    by = {e.name: e for e in entries}
    groups = {}
    for e in entries:
        if e.kind == "full" or e.parent not in by:
            continue
        name = _experiment_name(by[e.parent], e.selection)
        g = groups.setdefault(name, dict(full=by[e.parent], selection=e.selection))
        if e.kind == "fix-pattern":
            g["fix"] = e
        elif e.scale_mode == "MEAN":
            g["mean"] = e
        else:
            g["offset_entry"] = e
    return {n: Experiment(name=n, **g) for n, g in groups.items() if g.get("mean")}


def list_experiments(exps, data_dir, out):
    from ..netgen.catalog import DATASETS
    for name, e in exps.items():
        ds = DATASETS[e.dataset]
        ready = all(os.path.exists(data_path(p, data_dir)) for p in ds.paths())
        offset = f"release offset {e.release_offset:g}" if e.release_offset else "mean scale only"
        data = "data ready" if ready else ("data prepared on first run" if e.dataset == "cifar10"
                                           else "data missing")
        out.write(f"{name:24} {e.label:22} {e.dataset:9} {offset:22} {data}\n")
