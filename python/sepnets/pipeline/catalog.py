"""Which experiments exist: one per full-precision net of the network catalog,
grouped here with its variants so that the runner knows the nets of each
step (the full net, the MEAN pattern net, the release-style fix-pattern net,
the OFFSET net and the BQ entry). A full net without pattern variants (the
baselines MobileNet and SqueezeNet) is an experiment of step 1 alone.

Names are the full net's (``cifar10-resnet20``, ``cifar10-mobilenet``), a
GoogLeNet selection's (``googlenet-3x3``), and for SEP-Net the family's with
its data set: ``sepnet`` (ImageNet, as before) and ``cifar10-sepnet``.
"""
import os
from dataclasses import dataclass

from .nets import data_path


@dataclass
class Experiment:
    name: str
    full: object                 # catalog Entry, kind full
    mean: object = None          # pattern entry, scale_mode MEAN (None: step 1 only)
    fix: object = None           # fix-pattern entry (offsets), if the catalog has one
    offset_entry: object = None  # pattern entry, scale_mode OFFSET
    bq: object = None            # kind-bq entry (step 5), if the catalog has one
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
        if f.dataset == "cifar10" and f.family == "mobilenet":
            return "MobileNet 0.5"
        if f.dataset == "cifar10" and f.family == "squeezenet":
            from ..netgen.catalog import SQUEEZENET_LINEAR
            linear = f.name == SQUEEZENET_LINEAR
            return "SqueezeNet" + (", no ReLU on class scores" if linear else "")
        return f.title.split(" (")[0]


def _experiment_name(parent, selection):
    if parent.family == "sepnet":
        return "sepnet" if parent.dataset == "imagenet" else f"{parent.dataset}-sepnet"
    return f"{parent.name}-{selection}" if selection else parent.name


def experiments(entries=None):
    """{name: Experiment}: every full net of the catalog with its pattern
    variants (one experiment per GoogLeNet selection), and every full net
    without variants on its own."""
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
        elif e.kind == "bq":
            g["bq"] = e
        elif e.scale_mode == "MEAN":
            g["mean"] = e
        else:
            g["offset_entry"] = e
    out = {n: Experiment(name=n, **g) for n, g in groups.items() if g.get("mean")}
    derived = {e.parent for e in entries if e.kind != "full"}
    for e in entries:
        if e.kind == "full" and e.name not in derived:
            out[e.name] = Experiment(name=e.name, full=e)
    return out


def list_experiments(exps, data_dir, out):
    from ..netgen.catalog import DATASETS
    wn = max((len(n) for n in exps), default=0)
    wl = max((len(e.label) for e in exps.values()), default=0)
    for name, e in exps.items():
        ds = DATASETS[e.dataset]
        ready = all(os.path.exists(data_path(p, data_dir)) for p in ds.paths())
        offset = (f"release offset {e.release_offset:g}" if e.release_offset else
                  "mean scale only" if e.mean else "full precision only")
        data = "data ready" if ready else ("data prepared on first run" if e.dataset == "cifar10"
                                           else "data missing")
        out.write(f"{name:{wn}} {e.label:{wl}} {e.dataset:9} {offset:22} {data}\n")
