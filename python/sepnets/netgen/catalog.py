"""Every generated network, with the files it owns and how they relate.

The experiment runner and the model-size tool read this instead of guessing
file names. Each :class:`Entry` has:

* ``name``: e.g. ``cifar10-resnet20``, ``cifar10-resnet20-pattern-mean``,
  ``googlenet-3x3-pattern-offset``, ``googlenet-fix-3x3-pattern``,
  ``sepnet-r``, ``sepnet-b``, ``sepnet-bq``, ``mobilenet-0.5``, ``squeezenet``, and the
  CIFAR-10 forms of the small nets ``cifar10-sepnet-r``/``-b``/``-bq``,
  ``cifar10-mobilenet``, ``cifar10-squeezenet`` (and ``cifar10-squeezenet-linear``,
  the same without the ReLU on its class scores);
* ``kind``: ``full`` (a full-precision net, trained from scratch),
  ``pattern`` (BinaryPatternConvolution on the selected layers, scale_mode
  MEAN or OFFSET, fine-tuned from the parent's trained weights: the layer
  binarizes them itself) or ``fix-pattern`` (the release's way: stock
  Convolutions with lr_mult 0 on the selected layers, fine-tuned from weights
  binarized offline with ``offset``) or ``bq`` (a pattern net whose 1 x 1
  and FC weights are stored at 8 bits: SEP-Net-BQ; it shares the files of
  the pattern net it ``quantizes``: the 8-bit weights are baked into the
  stock layers of a model, not written into the net);
* ``parent``: the full-precision net it derives from (None for full nets);
* ``train_val``, ``deploy``, ``solver``, ``finetune_solver``: paths relative to
  the repository root. A full net's ``solver`` trains it from scratch. A
  pattern net's ``solver`` is its parent's (step 1 of the procedure: train
  the full net) and ``finetune_solver`` runs step 3 on its own train_val.
  A fix-pattern net's deploy is its parent's (identical layers).
* ``dataset`` (``cifar10``/``imagenet``), ``family``, ``depth`` (ResNets),
  ``selection`` (GoogLeNet: ``3x3``, ``5x5``, ``3x3-5x5``, ``projall1x1``),
  ``scale_mode``/``offset`` (pattern nets; for fix-pattern the offset to
  binarize with), and ``pattern_layers`` (names of the binarized layers).

Offsets are the release's: GoogLeNet 3x3 0.06, 5x5 0.05, 3x3+5x5 0.06,
projAll1x1 0.09, ResNet-20 0.09; the release tuned none for ResNet-32..110,
SEP-Net or Inception-BN, so the ResNets reuse 0.09 and the other two have
only MEAN variants (alpha = mean |W_c| needs no tuning).
"""
import dataclasses
import functools
import os
from dataclasses import dataclass, field, fields
from typing import Callable, Optional

from google.protobuf import text_format

from .. import REPO_ROOT
from ..errors import UserError
from . import baselines, googlenet, inception_bn, resnet_cifar, sepnet, solvers
from .layers import CIFAR10, IMAGENET, Binarize, render

PROTOTXT_DIR = "prototxt"
SEPNET_SOLVER = "prototxt/sepnet_solver.prototxt"
RESNET_OFFSET = 0.09
DATASETS = {d.name: d for d in (CIFAR10, IMAGENET)}
FAMILIES = ("resnet", "googlenet", "sepnet", "inception-bn", "mobilenet", "squeezenet")
#: The CIFAR-10 forms of the small-network comparison, in table order.
CIFAR10_SMALL = ("cifar10-sepnet-r", "cifar10-sepnet-b", "cifar10-sepnet-bq",
                 "cifar10-mobilenet", "cifar10-squeezenet")
#: SqueezeNet's CIFAR-10 form without relu_conv10 (same parameters): the retry
#: of the baseline whose class channels died; not one of the paper's nets.
SQUEEZENET_LINEAR = "cifar10-squeezenet-linear"


@dataclass(frozen=True)
class Entry:
    name: str
    family: str
    dataset: str
    kind: str
    parent: Optional[str]
    train_val: str
    deploy: str
    solver: str
    finetune_solver: Optional[str]
    scale_mode: Optional[str] = None
    offset: Optional[float] = None
    depth: Optional[int] = None
    selection: Optional[str] = None
    title: str = ""
    quantizes: Optional[str] = None   # kind bq: the pattern net it quantizes
    # (deploy: bool) -> (NetParameter, pattern layer names)
    build: Callable = field(default=None, repr=False, compare=False)
    # () -> list of solver fields for the solver this entry owns
    solver_fields: Callable = field(default=None, repr=False, compare=False)

    @property
    def derives_from(self):
        return self.parent

    @property
    def input_shape(self):
        return DATASETS[self.dataset].input_shape

    @functools.cached_property
    def pattern_layers(self):
        return tuple(self.build(False)[1])

    def net(self, deploy=False):
        return self.build(deploy)[0]

    def files(self):
        """[(path, text)] of the files this entry owns (a fix-pattern net does
        not own its parent's deploy; a pattern net not its parent's solver)."""
        if self.kind == "bq":
            return []
        gen = self.build.args[0].__module__
        out = [(self.train_val, render(self.net(False), f"{self.title}: train_val", gen))]
        if self.kind != "fix-pattern":
            out.append((self.deploy, render(self.net(True), f"{self.title}: deploy", gen)))
        own_solver = self.finetune_solver if self.kind != "full" else self.solver
        what = "fine-tune solver" if self.kind != "full" else "solver"
        out.append((own_solver, solvers.render(self.solver_fields(), f"{self.title}: {what}")))
        return out

    def to_dict(self):
        d = {f.name: getattr(self, f.name) for f in fields(self)
             if f.name not in ("build", "solver_fields")}
        d["pattern_layers"] = list(self.pattern_layers)
        return d


def _paths(name, kind):
    d = f"{PROTOTXT_DIR}/{name}"
    return dict(train_val=f"{d}/train_val.prototxt", deploy=f"{d}/deploy.prototxt",
                solver=f"{d}/solver.prototxt" if kind == "full" else None,
                finetune_solver=None if kind == "full" else f"{d}/finetune_solver.prototxt")


def _full(name, family, dataset, title, build, solver_recipe, solver_path=None, **kw):
    p = _paths(name, "full")
    if solver_path:
        p["solver"] = solver_path
    return Entry(name=name, family=family, dataset=dataset, kind="full", parent=None, title=title,
                 build=build, solver_fields=functools.partial(solver_recipe, p["train_val"], name),
                 **p, **kw)


def _variant(parent, name, kind, title, build, solver_recipe, scale_mode, offset, **kw):
    p = _paths(name, kind)
    if kind == "fix-pattern":
        p["deploy"] = parent.deploy
    p["solver"] = parent.solver
    return Entry(name=name, family=parent.family, dataset=parent.dataset, kind=kind,
                 parent=parent.name, title=title, build=build,
                 solver_fields=functools.partial(solver_recipe, p["train_val"], name,
                                                 finetune=True),
                 scale_mode=scale_mode, offset=offset, depth=parent.depth, **p, **kw)


def _bq(pattern, name, title):
    """The kind-bq entry of a pattern net: SEP-Net-BQ is SEP-Net-B with its
    1 x 1 and FC weights at 8 bits (its files, its runs folder)."""
    return dataclasses.replace(pattern, name=name, kind="bq", quantizes=pattern.name, title=title)


def _built(fn, *args, **kw):
    """A build callable (deploy) -> (net, pattern layers) with fixed arguments."""
    return functools.partial(_call_build, fn, args, kw)


def _call_build(fn, args, kw, deploy):
    return fn(*args, deploy=deploy, **kw)


def resnet_entries(depth):
    """cifar10-resnet<depth>, its two pattern variants and its fix-pattern net."""
    try:
        resnet_cifar.blocks_per_stage(depth)
    except ValueError as e:
        raise UserError("--depth", str(e)) from None
    base = f"cifar10-resnet{depth}"
    title = f"ResNet-{depth} for CIFAR-10"
    full = _full(base, "resnet", "cifar10", title,
                 _built(resnet_cifar.build, depth), solvers.cifar_resnet, depth=depth)
    out = [full]
    roles = frozenset({"block"})
    for mode in ("MEAN", "OFFSET"):
        offset = RESNET_OFFSET if mode == "OFFSET" else None
        bz = Binarize(roles, "pattern", mode, offset)
        out.append(_variant(full, f"{base}-pattern-{mode.lower()}", "pattern",
                            f"{title}, pattern {mode} (fine-tuning)",
                            _built(resnet_cifar.build, depth, binarize=bz,
                                   train_batch=resnet_cifar.FINETUNE_BATCH),
                            solvers.cifar_resnet, mode, offset))
    bz = Binarize(roles, "fix")
    out.append(_variant(full, f"{base}-fix-pattern", "fix-pattern",
                        f"{title}, fixed patterns (release style, fine-tuning)",
                        _built(resnet_cifar.build, depth, binarize=bz,
                               train_batch=resnet_cifar.FINETUNE_BATCH),
                        solvers.cifar_resnet, "OFFSET", RESNET_OFFSET))
    return out


def googlenet_entries():
    full = _full("googlenet", "googlenet", "imagenet", "GoogLeNet (release)",
                 _built(googlenet.build), solvers.imagenet_quick)
    out = [full]
    for sel, (roles, offset, lr) in googlenet.SELECTIONS.items():
        recipe = functools.partial(solvers.imagenet_quick, base_lr=lr)
        out.append(_variant(full, f"googlenet-fix-{sel}-pattern", "fix-pattern",
                            f"GoogLeNet, fixed {sel} patterns (release style, fine-tuning)",
                            _built(googlenet.build, binarize=Binarize(roles, "fix")),
                            recipe, "OFFSET", offset, selection=sel))
        for mode in ("MEAN", "OFFSET"):
            off = offset if mode == "OFFSET" else None
            out.append(_variant(full, f"googlenet-{sel}-pattern-{mode.lower()}", "pattern",
                                f"GoogLeNet, {sel} pattern {mode} (fine-tuning)",
                                _built(googlenet.build,
                                       binarize=Binarize(roles, "pattern", mode, off)),
                                recipe, mode, off, selection=sel))
    return out


def sepnet_entries():
    r = _full("sepnet-r", "sepnet", "imagenet", "SEP-Net-R (full precision, reconstructed)",
              _built(sepnet.build), solvers.sepnet, solver_path=SEPNET_SOLVER)
    b = _variant(r, "sepnet-b", "pattern", "SEP-Net-B (pattern MEAN, fine-tuning)",
                 _built(sepnet.build, binarize=Binarize(sepnet.B_ROLES, "pattern", "MEAN")),
                 solvers.sepnet, "MEAN", None)
    return [r, b, _bq(b, "sepnet-bq", "SEP-Net-BQ (SEP-Net-B, 1x1 and FC at 8 bits)")]


def cifar10_small_entries():
    """The small nets of the paper's comparison in their CIFAR-10 forms (the
    one adaptation rule: :mod:`.baselines`), all trained with the common
    solver :func:`.solvers.cifar_small`."""
    r = _full("cifar10-sepnet-r", "sepnet", "cifar10",
              "SEP-Net-R for CIFAR-10 (full precision)",
              _built(sepnet.build, dataset=CIFAR10), solvers.cifar_small)
    b = _variant(r, "cifar10-sepnet-b", "pattern",
                 "SEP-Net-B for CIFAR-10 (pattern MEAN, fine-tuning)",
                 _built(sepnet.build, binarize=Binarize(sepnet.B_ROLES, "pattern", "MEAN"),
                        dataset=CIFAR10),
                 solvers.cifar_small, "MEAN", None)
    return [r, b, _bq(b, "cifar10-sepnet-bq",
                      "SEP-Net-BQ for CIFAR-10 (SEP-Net-B, 1x1 and FC at 8 bits)"),
            _full("cifar10-mobilenet", "mobilenet", "cifar10",
                  "MobileNet v1 0.5 for CIFAR-10 (baseline)",
                  _built(baselines.mobilenet, dataset=CIFAR10), solvers.cifar_small),
            _full("cifar10-squeezenet", "squeezenet", "cifar10",
                  "SqueezeNet 1.0 for CIFAR-10 (baseline)",
                  _built(baselines.squeezenet, dataset=CIFAR10), solvers.cifar_small),
            _full(SQUEEZENET_LINEAR, "squeezenet", "cifar10",
                  "SqueezeNet 1.0 for CIFAR-10, no ReLU on the class scores (baseline)",
                  _built(baselines.squeezenet, dataset=CIFAR10, class_relu=False),
                  solvers.cifar_small)]


def inception_bn_entries():
    full = _full("inception-bn", "inception-bn", "imagenet", "Inception-BN (customized)",
                 _built(inception_bn.build), solvers.imagenet_bn)
    pat = _variant(full, "inception-bn-pattern-mean", "pattern",
                   "Inception-BN, k x k pattern MEAN (fine-tuning)",
                   _built(inception_bn.build,
                          binarize=Binarize(inception_bn.PATTERN_ROLES, "pattern", "MEAN")),
                   solvers.imagenet_bn, "MEAN", None)
    return [full, pat]


def baseline_entries():
    return [
        _full("mobilenet-0.5", "mobilenet", "imagenet", "MobileNet v1 0.5 (baseline)",
              _built(baselines.mobilenet), solvers.imagenet_bn),
        _full("squeezenet", "squeezenet", "imagenet", "SqueezeNet 1.0 (baseline)",
              _built(baselines.squeezenet), solvers.squeezenet),
    ]


def catalog():
    """Every generated network (a list of Entry, in generation order)."""
    out = []
    for depth in resnet_cifar.DEPTHS:
        out += resnet_entries(depth)
    return out + googlenet_entries() + sepnet_entries() + inception_bn_entries() + \
        baseline_entries() + cifar10_small_entries()


def by_name(entries=None):
    return {e.name: e for e in (catalog() if entries is None else entries)}


def select(net=None, depth=None):
    """The entries named by --net/--depth (everything when both are None):
    a name, a family, or a GoogLeNet selection (``googlenet-3x3``: its
    fix-pattern, pattern-mean and pattern-offset nets)."""
    if depth is not None:
        if net not in (None, "resnet", "cifar10-resnet"):
            raise UserError("--depth", f"applies to the ResNet family only (--net resnet), "
                                       f"not to {net!r}")
        return resnet_entries(depth)
    entries = catalog()
    if net is None:
        return entries
    if net == "cifar10-resnet":
        net = "resnet"
    named = [e for e in entries if e.name == net] or \
        [e for e in entries if e.family == net] or \
        [e for e in entries if e.selection and f"{e.family}-{e.selection}" == net]
    if not named:
        raise UserError("--net", f"unknown net {net!r}; use a family ({', '.join(FAMILIES)}), "
                                 "a GoogLeNet selection (googlenet-3x3, googlenet-5x5, "
                                 "googlenet-3x3-5x5, googlenet-projall1x1) or a name from --list")
    return named


def generate(entries):
    """{path relative to the repo root: text} for the files the entries own."""
    out = {}
    for e in entries:
        for path, text in e.files():
            if path in out and out[path] != text:
                raise RuntimeError(f"{path} generated twice with different contents")
            out[path] = text
    return out


def missing_data(entry, root=REPO_ROOT):
    """The data files/folders the entry's train_val reads that do not exist
    under `root` (so a launcher can say which one is missing before Caffe does)."""
    return [p for p in DATASETS[entry.dataset].paths() if not os.path.exists(os.path.join(root, p))]


def read_net(path, root=REPO_ROOT):
    """The NetParameter of a generated prototxt (for tools reading the catalog)."""
    from ..caffeio.env import import_caffe
    pb = import_caffe().proto.caffe_pb2
    net = pb.NetParameter()
    with open(os.path.join(root, path)) as f:
        text_format.Merge(f.read(), net)
    return net
