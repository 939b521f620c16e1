"""Inputs for checking a CUDA build of the project's Caffe on a GPU host that
has neither this machine's data nor its packages (scripts/device_check.sh).

The check runs the real trained ResNet-20 through BinaryPatternConvolution on
the GPU and on the CPU of the same binary, so the inputs are a small spread
subset of the real CIFAR-10 LMDBs (the full ones are too large to ship), the
full-precision model of the real run and the pattern-mean net and solver with
their paths pointed at those copies. Everything is written under one folder
with the repository's layout, so Caffe run from the repository root there
finds it by the same relative paths as here.
"""
import os
import shutil

from . import REPO_ROOT
from .cli import parser
from .errors import UserError
from .caffeio.proto import write_message
from .caffeio.run import caffe_path
from .data.datum_lmdb import lmdb_count, lmdb_subset
from .pipeline.nets import read_run_net, read_run_solver, run_net, run_solver
from .fileio import atomic_path

DEFAULT_MODEL = "models/cifar10-resnet20-8000/cifar10-resnet20-8000.caffemodel"
PATTERN_NET = "prototxt/cifar10-resnet20-pattern-mean"
DATA = "data/cifar10/v3"


def prepare(out, model, data_root, n_test, n_train, iters, seed):
    """Write the check's inputs under `out`; return the files written."""
    src = os.path.join(data_root, "cifar10", "v3")
    for name in ("train_lmdb", "test_lmdb", "mean_train.binaryproto", "mean_test.binaryproto"):
        if not os.path.exists(os.path.join(src, name)):
            raise UserError(os.path.join(src, name), "missing; prepare the data first "
                            "(python tools/prepare_cifar10.py --version 3)")
    if not os.path.isfile(model):
        raise UserError(model, "no such model (run tools/run_experiment.py cifar10-resnet20 "
                        "first, or pass --model)")
    with atomic_path(out, is_dir=True) as tmp:
        dst = os.path.join(tmp, DATA)
        os.makedirs(dst)
        for split, n in (("test", n_test), ("train", n_train)):
            total = lmdb_count(os.path.join(src, f"{split}_lmdb"))
            lmdb_subset(os.path.join(src, f"{split}_lmdb"), os.path.join(dst, f"{split}_lmdb"),
                        min(n, total))
            shutil.copy(os.path.join(src, f"mean_{split}.binaryproto"), dst)
        shutil.copy(model, os.path.join(tmp, "full.caffemodel"))
        # Paths as Caffe will see them from the repository root on the host.
        final = os.path.abspath(out)
        net = run_net(read_run_net(os.path.join(REPO_ROOT, PATTERN_NET, "train_val.prototxt")),
                      os.path.join(final, "data"))
        for layer in net.layer:
            if layer.HasField("data_param") and layer.data_param.batch_size > 100:
                layer.data_param.batch_size = 100
        net_path = os.path.join(tmp, "pattern_mean.prototxt")
        write_message(net_path, net, "ResNet-20 pattern-mean net on the check's data subset",
                      by="scripts/device_check.sh prepare")
        solver = run_solver(os.path.join(REPO_ROOT, PATTERN_NET, "finetune_solver.prototxt"),
                            os.path.join(final, "pattern_mean.prototxt"), iters,
                            dict(test_iter=max(1, n_test // 100), test_interval=iters,
                                 snapshot=iters, display=10),
                            os.path.join(final, "snap"))
        solver.random_seed = seed
        solver.snapshot = 0
        solver.snapshot_after_train = False
        write_message(os.path.join(tmp, "solver.prototxt"), solver,
                      "fine-tune solver of the check (CPU unless caffe is given -gpu)",
                      by="scripts/device_check.sh prepare")
    return sorted(os.path.relpath(os.path.join(d, f), out)
                  for d, _, files in os.walk(out) for f in files)


def main(argv=None):
    p = parser("python -m sepnets.device_check",
               "Write the inputs of scripts/device_check.sh (a CUDA build checked on a GPU "
               "host): data subsets, the full-precision model, the pattern-mean net and "
               "solver, under one folder that travels with the repository.",
               ["python -m sepnets.device_check --out .device/check",
                "python -m sepnets.device_check --out .device/check --iters 300"])
    p.add_argument("--out", default=os.path.join(REPO_ROOT, ".device", "check"),
                   help="output folder (replaced; default: .device/check)")
    p.add_argument("--model", default=os.path.join(REPO_ROOT, DEFAULT_MODEL),
                   help=f"full-precision ResNet-20 model (default: {DEFAULT_MODEL})")
    p.add_argument("--data", default=os.path.join(REPO_ROOT, "data"),
                   help="data folder holding cifar10/v3 (default: data)")
    p.add_argument("--test-images", type=int, default=500, help="test subset (default: 500)")
    p.add_argument("--train-images", type=int, default=256, help="train subset (default: 256)")
    p.add_argument("--iters", type=int, default=200, help="fine-tuning iterations (default: 200)")
    p.add_argument("--seed", type=int, default=1, help="solver random_seed (default: 1)")
    a = p.parse_args(argv)
    if min(a.test_images, a.train_images, a.iters) < 1:
        raise UserError(None, "--test-images, --train-images and --iters must be >= 1")
    out = os.path.abspath(a.out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(out, "exists and is not a folder")
    files = prepare(out, a.model, os.path.abspath(a.data), a.test_images, a.train_images,
                    a.iters, a.seed)
    print(f"wrote {caffe_path(out)}: {len(files)} files")
    return 0


if __name__ == "__main__":
    import sys
    from .cli import run
    sys.exit(run(main))
