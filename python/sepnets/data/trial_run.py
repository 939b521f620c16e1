"""A few `caffe train` iterations of a train_val prototxt on prepared data:
the cheapest proof that an LMDB, its mean file and a network agree (shapes,
crop sizes, label range) before a long run is started on them."""
import os
import re
import subprocess

from google.protobuf import text_format

from ..caffeio.env import caffe_tool
from ..errors import UserError
from .datum_lmdb import caffe_pb2


def retarget(train_val, data, batch_size=2):
    """NetParameter of `train_val` whose Data layers read `data`.

    data: {"TRAIN": (lmdb, mean_file or None), "TEST": (...)}; a phase
    missing from `data` has its Data layers removed. A mean_file replaces
    the layer's mean values; None keeps what the prototxt has.
    """
    pb2 = caffe_pb2()
    net = pb2.NetParameter()
    try:
        with open(train_val) as f:
            text_format.Merge(f.read(), net)
    except (OSError, text_format.ParseError) as e:
        raise UserError(train_val, f"cannot read network ({e})") from e
    keep = []
    for layer in net.layer:
        if layer.type == "Data":
            phases = {pb2.Phase.Name(r.phase) for r in layer.include if r.HasField("phase")}
            phase = phases.pop() if len(phases) == 1 else "TRAIN"
            if phase not in data:
                continue
            lmdb, mean_file = data[phase]
            layer.data_param.source = os.path.abspath(lmdb)
            layer.data_param.backend = pb2.DataParameter.LMDB
            layer.data_param.batch_size = batch_size
            if mean_file:
                del layer.transform_param.mean_value[:]
                layer.transform_param.mean_file = os.path.abspath(mean_file)
        keep.append(layer)
    del net.layer[:]
    net.layer.extend(keep)
    return net


def train_iterations(net, workdir, iterations=2, test=False, timeout=600):
    """Run `caffe train` for `iterations` on NetParameter `net` (CPU).

    Returns {"losses": [training loss per displayed iteration], "log": text};
    raises UserError with the log's tail when Caffe fails.
    """
    pb2 = caffe_pb2()
    os.makedirs(workdir, exist_ok=True)
    net_path = os.path.join(workdir, "train_val.prototxt")
    with open(net_path, "w") as f:
        f.write(text_format.MessageToString(net))
    solver = pb2.SolverParameter(net=net_path, base_lr=0.001, lr_policy="fixed", momentum=0.9,
                                 max_iter=iterations, display=1, snapshot_after_train=False,
                                 solver_mode=pb2.SolverParameter.CPU, random_seed=1)
    if test:
        solver.test_iter.append(1)
        solver.test_interval = iterations + 1     # one test pass, before training
        solver.test_initialization = True
    solver_path = os.path.join(workdir, "solver.prototxt")
    with open(solver_path, "w") as f:
        f.write(text_format.MessageToString(solver))
    env = dict(os.environ, GLOG_minloglevel="0", GLOG_logtostderr="1")
    try:
        res = subprocess.run([caffe_tool("caffe"), "train", f"-solver={solver_path}"],
                             capture_output=True, text=True, errors="replace", env=env,
                             timeout=timeout, cwd=workdir)
    except subprocess.TimeoutExpired as e:
        raise UserError(net_path, f"caffe train did not finish in {timeout} s") from e
    log = res.stdout + res.stderr
    if res.returncode != 0:
        tail = " | ".join(log.strip().splitlines()[-4:])
        raise UserError(net_path, f"caffe train failed (exit {res.returncode}): {tail}")
    losses = [float(x) for x in re.findall(r"Iteration \d+ \(.*?\), loss = ([-+\w.]+)", log)]
    if not losses:
        losses = [float(x) for x in re.findall(r"Iteration \d+, loss = ([-+\w.]+)", log)]
    return {"losses": losses, "log": log}
