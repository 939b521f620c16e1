"""The committed solvers drive the `caffe` tool from the repository root: a
few iterations of ResNet-20 training on a tiny fake CIFAR-10 LMDB, then its
pattern-MEAN fine-tuning from the snapshot (the procedure's steps 1 and 3)."""
import os
import subprocess

import numpy as np
from google.protobuf import text_format

from sepnets.netgen import catalog as cat

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _fake_cifar(caffe, root, n=8):
    import lmdb
    pb = caffe.proto.caffe_pb2
    rng = np.random.default_rng(0)
    for split, size in (("train", 40), ("test", 32)):   # version 3: padded training images
        images = rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8)
        path = os.path.join(root, f"data/cifar10/v3/{split}_lmdb")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with lmdb.open(path, map_size=1 << 24) as env, env.begin(write=True) as txn:
            for i, im in enumerate(images):
                d = pb.Datum(channels=3, height=size, width=size, data=im.tobytes(), label=i % 10)
                txn.put(f"{i:08d}".encode(), d.SerializeToString())
        mean = caffe.io.array_to_blobproto(images.mean(0, keepdims=True).astype(np.float32))
        with open(os.path.join(root, f"data/cifar10/v3/mean_{split}.binaryproto"), "wb") as f:
            f.write(mean.SerializeToString())


def _short_solver(caffe, rel, root, batch):
    """The committed solver and net, cut to 2 iterations of `batch` images."""
    pb = caffe.proto.caffe_pb2
    s = pb.SolverParameter()
    with open(os.path.join(REPO, rel)) as f:
        text_format.Merge(f.read(), s)
    net = pb.NetParameter()
    with open(os.path.join(REPO, s.net)) as f:
        text_format.Merge(f.read(), net)
    for lp in net.layer:
        if lp.type == "Data":
            lp.data_param.batch_size = batch
    net_rel = "short/" + os.path.basename(os.path.dirname(s.net)) + ".prototxt"
    os.makedirs(os.path.join(root, "short"), exist_ok=True)
    with open(os.path.join(root, net_rel), "w") as f:
        f.write(text_format.MessageToString(net))
    s.net, s.max_iter, s.test_interval, s.snapshot = net_rel, 2, 2, 0
    del s.test_iter[:]
    s.test_iter.append(1)
    out = os.path.join(root, "short", os.path.basename(rel))
    with open(out, "w") as f:
        f.write(text_format.MessageToString(s))
    os.makedirs(os.path.join(root, os.path.dirname(s.snapshot_prefix)), exist_ok=True)
    return out, s.snapshot_prefix


def _train(caffe_bin, solver, root, *extra):
    out = subprocess.run([caffe_bin, "train", "-solver", solver, *extra], cwd=root,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stderr


def test_resnet20_train_then_pattern_finetune(caffe, caffe_bin, tmp_path):
    root = str(tmp_path)
    _fake_cifar(caffe, root)
    by = cat.by_name()
    full, pattern = by["cifar10-resnet20"], by["cifar10-resnet20-pattern-mean"]
    assert cat.missing_data(full, root) == []
    solver, prefix = _short_solver(caffe, full.solver, root, batch=4)
    log = _train(caffe_bin, solver, root)
    assert "Test net output #0: acctop1" in log and "Optimization Done" in log
    model = os.path.join(root, prefix + "_iter_2.caffemodel")
    assert os.path.isfile(model)
    solver, prefix = _short_solver(caffe, pattern.finetune_solver, root, batch=4)
    log = _train(caffe_bin, solver, root, "-weights", model)
    assert "Optimization Done" in log
    assert os.path.isfile(os.path.join(root, prefix + "_iter_2.caffemodel"))
