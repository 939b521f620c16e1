"""``tools/gen_prototxt.py``: write, check and summarise the generated nets.

Writing only touches files whose text changed, so an unchanged tree keeps its
timestamps; ``--check`` generates into a temporary folder and compares, which
is what the test suite runs to keep the committed ``prototxt/`` honest.
"""
import os
import sys
import tempfile

from .. import REPO_ROOT
from ..errors import UserError
from ..fileio import write_text_atomic
from . import catalog as cat

DESCRIPTION = """\
Generate every network (train_val + deploy) and solver prototxt of the project
into prototxt/ (one folder per net; see --list), or check or summarise them.

All paths inside the generated files (LMDBs, mean files, solver 'net:' and
'snapshot_prefix: runs/<net>/...') are relative to the repository root: run
caffe from there, e.g. 'caffe train -solver prototxt/sepnet_solver.prototxt'
(SEP-Net-R on ImageNet). Caffe does not create runs/<net>/; the experiment
runner does. Solvers say solver_mode CPU; add '-gpu 0' for a GPU."""

EXAMPLES = [
    "python tools/gen_prototxt.py                      # regenerate everything into prototxt/",
    "python tools/gen_prototxt.py --check              # exit 1 naming every stale file",
    "python tools/gen_prototxt.py --summary            # Markdown parameter tables",
    "python tools/gen_prototxt.py --list               # the catalog: names, kinds, parents",
    "python tools/gen_prototxt.py --net sepnet-r       # one net (a name from --list)",
    "python tools/gen_prototxt.py --net googlenet      # a family and all its variants",
    "python tools/gen_prototxt.py --net googlenet-3x3  # the 3x3 pattern nets (fix, mean, offset)",
    "python tools/gen_prototxt.py --depth 32           # ResNet-32 and its pattern variants",
    "python tools/gen_prototxt.py --depth 1202 --root /tmp/r1202   # a depth outside the catalog",
]


def _parse_depth(text):
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise UserError("--depth", f"{text!r} is not a whole number (use 6n+2: 20, 32, 44, ...)") \
            from None


def _write(files, root):
    changed = 0
    for rel, text in files.items():
        path = os.path.join(root, rel)
        if os.path.isfile(path):
            with open(path) as f:
                if f.read() == text:
                    continue
        write_text_atomic(path, text)
        changed += 1
    return changed


def _extra_files(files, root):
    top = os.path.join(root, cat.PROTOTXT_DIR)
    found = []
    for d, _, names in os.walk(top):
        for n in names:
            rel = os.path.relpath(os.path.join(d, n), root).replace(os.sep, "/")
            if n.endswith(".prototxt") and rel not in files:
                found.append(rel)
    return sorted(found)


def check(files, root, full):
    """Problems (one line each) between the generator output and `root`."""
    problems = []
    with tempfile.TemporaryDirectory(prefix="gen_prototxt-") as tmp:
        _write(files, tmp)
        for rel in files:
            have = os.path.join(root, rel)
            if not os.path.isfile(have):
                problems.append(f"{rel}: missing; run 'python tools/gen_prototxt.py'")
            else:
                with open(have) as a, open(os.path.join(tmp, rel)) as b:
                    if a.read() != b.read():
                        problems.append(f"{rel}: differs from the generator output; "
                                        "run 'python tools/gen_prototxt.py'")
    if full:
        problems += [f"{rel}: not produced by the generator (stale? delete it)"
                     for rel in _extra_files(files, root)]
    return problems


def _fmt(n):
    return f"{n:,}"


def summary(entries):
    """Markdown: the parameter table of `entries` and, with SEP-Net among them,
    its reconstructed layer table."""
    from google.protobuf import text_format

    from . import params
    lines = ["| net | dataset | kind | params (M) | total | k x k | 1 x 1 | FC | other "
             "| binarized |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    counted = {}
    for e in entries:
        # a fix-pattern net's own deploy build differs from its parent's deploy
        # file only in lr_mult, so it counts the same
        key = (e.deploy, e.pattern_layers)
        if key not in counted:
            counted[key] = params.count(text_format.MessageToString(e.net(True)),
                                        e.pattern_layers)
        c = counted[key]
        lines.append(f"| {e.name} | {e.dataset} | {e.kind} | {c['total'] / 1e6:.3f} | "
                     f"{_fmt(c['total'])} | {_fmt(c['kxk'])} | {_fmt(c['1x1'])} | "
                     f"{_fmt(c['fc'])} | {_fmt(c['other'])} | {_fmt(c['binarized'])} |")
    lines += ["", "k x k / 1 x 1 / FC: weights only; other: biases, BatchNorm Scale (gamma, "
              "beta), pattern alphas; total = their sum (BatchNorm running statistics not "
              "counted); binarized: weights of the pattern layers."]
    if any(e.family == "sepnet" and e.dataset == "imagenet" for e in entries):
        lines += ["", sepnet_table()]
    if any(e.name in cat.CIFAR10_SMALL for e in entries):
        lines += ["", small_nets_table()]
    return "\n".join(lines)


#: Reference points of the small-network table (the ResNets already trained here).
SMALL_NETS_REFERENCES = ("cifar10-resnet20", "cifar10-resnet56")


def small_nets_table():
    """Markdown: the CIFAR-10 forms of the small-network comparison with their
    parameters, multiply-adds per 32 x 32 image and size as stored (the
    precision rules of compress.sizes: fp32, 1 bit per pattern weight plus a
    scale per filter, 8 bits for BQ's 1x1/FC weights), ResNets for reference;
    priced as logs/RESULTS.md prices them (model_summary.net_costs)."""
    from ..compress.model_summary import net_costs
    from ..compress.sizes import MB
    names = cat.CIFAR10_SMALL + SMALL_NETS_REFERENCES
    costs, by = net_costs(tuple(names)), cat.by_name()
    base = costs[names[0]].params
    out = ["The small-network comparison on CIFAR-10 (the CIFAR-10 forms of the paper's "
           "ImageNet nets; the adaptation rule is in `python/sepnets/netgen/baselines.py`), "
           "per 32 x 32 image:", "",
           "| net | params | vs SEP-Net-R | multiply-adds (M) | size as stored (MB) | stored as |",
           "|---|---:|---:|---:|---:|---|"]
    for name in names:
        c = costs[name]
        how = {"full": "fp32", "pattern": "1-bit k x k patterns, rest fp32",
               "bq": "1-bit patterns, 8-bit 1x1/FC, rest fp32"}[by[name].kind]
        ref = " (reference)" if name in SMALL_NETS_REFERENCES else ""
        out.append(f"| {name}{ref} | {_fmt(c.params)} | {c.params / base - 1:+.1%} | "
                   f"{c.macs / 1e6:.1f} | {c.nbytes / MB:.3f} | {how} |")
    return "\n".join(out)


def sepnet_table():
    """Markdown layer table of SEP-Net-R as generated (recovered vs reconstructed)."""
    from google.protobuf import text_format

    from . import params, sepnet
    net = cat.by_name()["sepnet-r"].net(True)
    rows = params.conv_table(text_format.MessageToString(net))
    out = ["SEP-Net-R, layer by layer (224 x 224 input; 'origin': recovered from the paper's "
           "table or reconstructed here):", "",
           "| layer | type | kernel / stride | groups | output C x H x W | weights | origin |",
           "|---|---|---|---:|---|---:|---|"]
    for name, typ, k, s, g, shape, w in rows:
        block = name.split("/")[0]
        origin = "recovered" if block in sepnet.RECOVERED and not name.startswith(
            "module4/svd2") else "reconstructed"
        ks = f"{k}x{k} / {s}" if k else "-"
        out.append(f"| {name} | {typ} | {ks} | {g or '-'} | {' x '.join(map(str, shape))} | "
                   f"{_fmt(w)} | {origin} |")
    return "\n".join(out)


def command(a):
    """What ``tools/gen_prototxt.py`` does with its parsed command line."""
    depth = _parse_depth(a.depth)
    entries = cat.select(a.net, depth)
    full = a.net is None and depth is None
    if a.list:
        for e in entries:
            print(f"{e.name}\t{e.kind}\t{e.dataset}\tparent={e.parent or '-'}\t{e.train_val}")
        return 0
    if a.summary or a.check:
        status = 0
        if a.check:
            files = cat.generate(entries)
            problems = check(files, a.root, full)
            for line in problems:
                print(f"gen_prototxt.py: {line}", file=sys.stderr)
            if problems:
                status = 1
            else:
                print(f"{cat.PROTOTXT_DIR}: {len(files)} files up to date")
        if a.summary:
            print(summary(entries))
        return status
    if os.path.exists(a.root) and not os.path.isdir(a.root):
        raise UserError(a.root, "--root is not a folder")
    files = cat.generate(entries)
    changed = _write(files, a.root)
    print(f"{os.path.join(a.root, cat.PROTOTXT_DIR)}: {changed} of {len(files)} files written "
          f"({len(files) - changed} unchanged)")
    if depth is not None and depth not in cat.resnet_cifar.DEPTHS and \
            os.path.realpath(a.root) == os.path.realpath(REPO_ROOT):
        print(f"note: depth {depth} is not in the catalog; 'gen_prototxt.py --check' will call "
              "its files stale")
    return 0
