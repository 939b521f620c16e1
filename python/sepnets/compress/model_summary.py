"""``tools/model_summary.py``: the per-layer storage table of one net and the
size table of every generated net beside the paper's sizes, priced by the
precision rules of :mod:`sepnets.compress.sizes`.
"""
import functools
import json
import os
from dataclasses import dataclass

from .. import REPO_ROOT
from ..caffeio.proto import read_prototxt
from ..caffeio.pycaffe import net_param_shapes
from ..cli import input_shape
from ..errors import UserError
from ..report.paper import PAPER_SIZES_MB
from .sizes import BINARY, FP32, INT8, MB, Summary, net_layer_sizes, summarize


def format_summary(s):
    """A Larq-style text table: one row per parameter layer, then the totals."""
    head = ("Layer", "Type", "Kernel", "Precision", "Params", "Bits", "Bytes")
    rows = [(lay.name, lay.type, lay.kernel or "-", lay.precision, f"{lay.params:,}",
             f"{lay.bits:,}", f"{lay.nbytes:,}") for lay in s.layers]
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    right = (False, False, False, False, True, True, True)

    def fmt(r):
        return "| " + "  ".join(c.rjust(w) if rt else c.ljust(w)
                                for c, w, rt in zip(r, widths, right)) + " |"
    width = len(fmt(head))
    title = f"+{s.name} stats"
    lines = [title + "-" * (width - len(title) - 1) + "+", fmt(head)]
    lines += [fmt(r) for r in rows]
    lines.append("+" + "-" * (width - 2) + "+")
    by = s.params_by_precision()
    totals = [("Total params", f"{s.params:,}")]
    totals += [(f"  {p} params", f"{by[p]:,}") for p in (BINARY, INT8, FP32)]
    totals += [("Model size as stored", f"{s.nbytes / MB:.4f} MB ({s.nbytes:,} bytes)"),
               ("Model size if all fp32", f"{s.fp32_bytes / MB:.4f} MB ({s.fp32_bytes:,} bytes)"),
               ("Compression ratio", f"{s.ratio:.2f}x")]
    tw = max(len(a) for a, _ in totals)
    vw = max(len(b) for _, b in totals)
    title = f"+{s.name} summary"
    box = tw + vw + 6
    lines.append(title + "-" * max(1, box - len(title) - 1) + "+")
    lines += [f"| {a.ljust(tw)}  {b.rjust(vw)} |" for a, b in totals]
    lines.append("+" + "-" * (box - 2) + "+")
    lines.append("1-bit weights carry one fp32 scale per filter; 8-bit weights a fp32 scale "
                 "and uint8 zero point per tensor; MB = 10^6 bytes.")
    return "\n".join(lines)


# ------------------------------------------------------------- the catalog

#: Catalog names of the paper's small nets (sepnet-bq: SEP-Net-B counted with --bq).
PAPER_NAMES = {"sepnet-r": "SEP-Net-R", "sepnet-b": "SEP-Net-B", "sepnet-bq": "SEP-Net-BQ",
               "mobilenet-0.5": "MobileNet 0.5", "squeezenet": "SqueezeNet"}


def catalog_summaries(names=None):
    """[(row name, Entry, Summary)] for every generated net's deploy prototxt
    (fix-pattern nets: their parent's deploy with the pattern layers baked;
    kind-bq entries such as SEP-Net-BQ: their pattern net's deploy with 8-bit
    1x1/FC weights, as ``--bq`` counts it). `names`: only these catalog
    entries (the comparison tables price a few nets, not all of them)."""
    try:
        from ..netgen.catalog import catalog
    except ImportError as e:
        raise UserError("sepnets.netgen.catalog", f"not available ({e})") from None
    out, shapes = [], {}
    for e in catalog():
        if names is not None and e.name not in names:
            continue
        deploy = os.path.join(REPO_ROOT, e.deploy)
        net = read_prototxt(deploy)
        if deploy not in shapes:  # fix-pattern nets share their parent's deploy
            shapes[deploy] = net_param_shapes(net, deploy)
        baked = tuple(e.pattern_layers) if e.kind == "fix-pattern" else ()
        layers = net_layer_sizes(net, deploy, e.kind == "bq", baked=baked,
                                 shapes=shapes[deploy])
        out.append((e.name, e, Summary(e.name, layers)))
    return out


@dataclass
class Cost:
    """What a comparison table says of one net besides its accuracy."""
    params: int               # learned parameters (the project's counter)
    nbytes: int               # size as stored (compress.sizes' rules)
    macs: int                 # multiply-adds per image


@functools.lru_cache(maxsize=None)
def net_costs(names):
    """{catalog name: Cost} of the generated deploy prototxts (pycaffe), for
    a tuple of catalog names: the one pricing of a comparison's nets (the
    small-network table in logs/RESULTS.md and `gen_prototxt.py --summary`)."""
    from ..netgen.params import multiply_adds
    out, macs = {}, {}
    for row, entry, s in catalog_summaries(set(names)):
        if row not in names:
            continue
        if entry.deploy not in macs:
            macs[entry.deploy] = multiply_adds(os.path.join(REPO_ROOT, entry.deploy))
        out[row] = Cost(s.counts["total"], s.nbytes, macs[entry.deploy])
    return out


def paper_size(row):
    return PAPER_SIZES_MB.get(PAPER_NAMES.get(row, row))


def format_catalog(rows):
    lines = ["| Net | Kind | Params | fp32 size (MB) | Size as stored (MB) | Ratio "
             "| Paper (MB) |", "|---|---|---:|---:|---:|---:|---:|"]
    for row, e, s in rows:
        paper = paper_size(row)
        kind = "pattern (BQ)" if e.kind == "bq" else e.kind
        lines.append(f"| {row} | {kind} | {s.counts['total'] / 1e6:.3f} M | {s.fp32_bytes / MB:.2f} | "
                     f"{s.nbytes / MB:.2f} | {s.ratio:.1f}x | "
                     f"{'' if paper is None else f'{paper:.1f}'} |")
    return "\n".join(lines)


# ------------------------------------------------------------------ command

def command(a):
    """What ``tools/model_summary.py`` does with its parsed command line."""
    if a.all:
        rows = catalog_summaries()
        if a.json:
            print(json.dumps([dict(s.as_dict(), paper_mb=paper_size(row)) for row, _, s in rows],
                             indent=1))
        else:
            print(format_catalog(rows))
        return 0
    if not a.prototxt:
        raise UserError("PROTOTXT", "a prototxt is required (or --all)")
    shape = input_shape(a.input_shape) if a.input_shape else None
    s = summarize(a.prototxt, a.caffemodel, a.bq, shape, tuple(a.baked))
    print(json.dumps(s.as_dict(), indent=1) if a.json else format_summary(s))
    return 0
