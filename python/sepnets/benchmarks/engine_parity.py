"""The project's CPU engines against Caffe 1.0's own in real training: the
same fixed-seed fine-tuning of a trained model with each engine set, their
losses compared iteration by iteration, and the seconds per real `caffe train`
iteration (data layer and solver update included) of each.

Why a real run and not only layer tests: it checks that the engines are a
drop-in replacement where it matters (same data order, same random crops,
same solver), and it measures the speed a training run actually gets.
"""
import os
import subprocess
import tempfile

from .. import REPO_ROOT
from ..caffeio.env import caffe_tool
from ..caffeio.log import parse_log
from ..caffeio.proto import caffe_pb2, read_prototxt
from ..errors import UserError
from ..fileio import require_file
from .bench_train import CONV_TYPES

SEED = 1701


def engine_variant(net, stock, data_dir):
    """`net` (a train_val) with engine CAFFE everywhere if `stock`, its data
    sources under `data_dir` (they are relative to the repository's data/)."""
    pb2 = caffe_pb2()
    out = pb2.NetParameter()
    out.CopyFrom(net)
    for layer in out.layer:
        if layer.type == "Data" and layer.data_param.source.startswith("data/"):
            layer.data_param.source = os.path.join(data_dir, layer.data_param.source[5:])
        if layer.transform_param.mean_file.startswith("data/"):
            layer.transform_param.mean_file = os.path.join(
                data_dir, layer.transform_param.mean_file[5:])
        if not stock:
            continue
        if layer.type == "BatchNorm":
            layer.batch_norm_param.engine = pb2.BatchNormParameter.CAFFE
        elif layer.type == "Scale":
            layer.scale_param.engine = pb2.ScaleParameter.CAFFE
        elif layer.type in CONV_TYPES:
            layer.convolution_param.engine = pb2.ConvolutionParameter.CAFFE
    return out


def _solver_text(net_path, iterations):
    fields = [("net", f'"{net_path}"'), ("base_lr", 0.01), ("lr_policy", '"fixed"'),
              ("momentum", 0.9), ("weight_decay", 0.0001), ("max_iter", iterations),
              ("display", 1), ("average_loss", 1), ("test_iter", 1),
              ("test_interval", iterations + 1), ("test_initialization", "false"),
              ("snapshot_after_train", "false"), ("random_seed", SEED),
              ("solver_mode", "CPU")]
    return "".join(f"{k}: {v}\n" for k, v in fields)


def train(net, weights, iterations, threads, tmp, which):
    """(losses, seconds per iteration) of one fixed-seed `caffe train`."""
    from google.protobuf import text_format
    net_path = os.path.join(tmp, f"{which}_train_val.prototxt")
    with open(net_path, "w") as f:
        f.write(text_format.MessageToString(net))
    solver = os.path.join(tmp, f"{which}_solver.prototxt")
    with open(solver, "w") as f:
        f.write(_solver_text(net_path, iterations))
    log = os.path.join(tmp, f"{which}.log")
    env = dict(os.environ, GLOG_logtostderr="1", GLOG_minloglevel="0",
               OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    with open(log, "w") as out:
        rc = subprocess.run([caffe_tool("caffe"), "train", "-solver", solver, "-weights",
                             weights], stdout=out, stderr=subprocess.STDOUT, env=env).returncode
    parsed = parse_log(log)
    if rc != 0 or not parsed.rows:
        with open(log) as f:
            errors = [l.strip() for l in f if l.startswith(("F", "E"))]
        raise UserError(weights, f"caffe train ({which} engines) failed: "
                                 + (errors[-1] if errors else f"exit {rc}"))
    its, secs, losses = parsed.series("loss")
    # One loss per iteration, and Caffe's final one (a forward pass after the
    # last update) when the display interval divides max_iter.
    if len(losses) < iterations:
        raise UserError(log, f"{len(losses)} losses for {iterations} iterations")
    per_iter = (secs[-1] - secs[0]) / (len(secs) - 1) if len(secs) > 1 else float("nan")
    return losses, per_iter


def compare(train_val, weights, data_dir, iterations, threads, say):
    """Both engine sets on the same fine-tuning; a dict for the report."""
    require_file(weights, "caffemodel")
    for sub in ("cifar10/v3/train_lmdb", "cifar10/v3/test_lmdb"):
        if not os.path.isdir(os.path.join(data_dir, sub)):
            raise UserError(os.path.join(data_dir, sub), "CIFAR-10 LMDB not found; make it "
                            "with python tools/prepare_cifar10.py --version 3")
    net = read_prototxt(train_val)
    result = {"train_val": train_val, "weights": weights, "iterations": iterations,
              "threads": threads}
    with tempfile.TemporaryDirectory(prefix="engine_parity_") as tmp:
        for which in ("ours", "stock"):
            say(f"[parity] caffe train, {which} engines, {iterations} iterations")
            result[which] = train(engine_variant(net, which == "stock", data_dir), weights,
                                  iterations, threads, tmp, which)
    a, b = result["ours"][0], result["stock"][0]
    result["first_diff"] = abs(a[0] - b[0])
    result["max_diff"] = max(abs(x - y) for x, y in zip(a, b))
    result["max_diff_at"] = max(range(len(a)), key=lambda i: abs(a[i] - b[i]))
    return result


def _rel(path):
    return os.path.relpath(path, REPO_ROOT) if path.startswith(REPO_ROOT + os.sep) else path


def format_report(r, command):
    (la, sa), (lb, sb) = r["ours"], r["stock"]
    return "\n".join([
        "# The project's CPU engines against Caffe 1.0's in a real fine-tuning", "",
        f"Made by `{command}`: `caffe train -weights {_rel(r['weights'])}` on "
        f"`{_rel(r['train_val'])}` for {r['iterations']} iterations (base_lr 0.01, random_seed "
        f"{SEED}, {r['threads']} thread(s)), once with engine DEFAULT (oneDNN convolutions, "
        "fused OpenMP BatchNorm/Scale) and once with engine CAFFE on every Convolution, "
        "BinaryPatternConvolution, BatchNorm and Scale layer.", "",
        "| | ours | stock Caffe |", "|---|---:|---:|",
        f"| loss at iteration 0 | {la[0]:.6f} | {lb[0]:.6f} |",
        f"| loss after iteration {r['iterations'] - 1} | {la[-1]:.6f} | {lb[-1]:.6f} |",
        f"| seconds per `caffe train` iteration | {sa:.3f} | {sb:.3f} |", "",
        f"First-iteration losses differ by {r['first_diff']:.2e}; the largest difference "
        f"over the run is {r['max_diff']:.2e} (iteration {r['max_diff_at']}); a real "
        f"training iteration (data, forward, backward, update) takes {sb / sa:.2f}x less "
        "time with the project's engines.", ""])
