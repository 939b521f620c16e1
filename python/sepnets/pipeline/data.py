"""The data a run needs: CIFAR-10 is prepared on first use (it converts in a
minute), ImageNet is named with the command that makes it (it takes hours
and a copy of ILSVRC-2012 the project cannot fetch).
"""
import os
import time

from ..caffeio.run import shown
from ..errors import UserError
from .nets import data_path


def shared_cifar_source():
    d = os.environ.get("SEPNETS_SHARED_DIR")
    if d:
        p = os.path.join(d, "data", "cifar10-jpeg.tar.gz")
        if os.path.isfile(p):
            return p
    return None


def ensure_data(exp, data_dir, source, say):
    """Prepare CIFAR-10 if its files are missing; name the missing ImageNet
    file and the command that makes it."""
    from ..netgen.catalog import DATASETS
    ds = DATASETS[exp.dataset]
    missing = [p for p in ds.paths() if not os.path.exists(data_path(p, data_dir))]
    if not missing:
        return
    first = data_path(missing[0], data_dir)
    if exp.dataset == "cifar10":
        from ..data import cifar10
        src = source or shared_cifar_source()
        out = os.path.join(data_dir, "cifar10")
        say(f"data: {shown(first)} is missing; preparing CIFAR-10 version 3 in "
            f"{shown(out)} from {src or 'the official download'} (once)")
        t0 = time.time()
        cifar10.prepare(src, out, version=3, progress=lambda m: say(f"  {m}"))
        say(f"data: ready in {time.time() - t0:.0f} s")
        still = [p for p in ds.paths() if not os.path.exists(data_path(p, data_dir))]
        if still:
            raise UserError(data_path(still[0], data_dir), "still missing after preparing "
                            "CIFAR-10 version 3")
        return
    out = os.path.dirname(data_path(ds.train_source, data_dir))
    raise UserError(first, f"{exp.dataset} data not found; make it with: python "
                    f"tools/prepare_imagenet.py --train ILSVRC2012/train --val ILSVRC2012/val "
                    f"--val-labels val.txt --out {shown(out)}")
