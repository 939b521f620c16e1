"""gen_prototxt.py keeps prototxt/ in sync with the generators, reports bad
options in one line, and the catalog describes files that exist and agree
with the interfaces other tools rely on."""
import os
import subprocess
import sys

import pytest

from sepnets.netgen import catalog as cat
from sepnets.netgen.cli import check

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(REPO, "tools", "gen_prototxt.py")


def _run(*args, cwd=REPO):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module")
def entries():
    return cat.catalog()


def _read(caffe, rel, kind="net"):
    from google.protobuf import text_format
    msg = caffe.proto.caffe_pb2.NetParameter() if kind == "net" else \
        caffe.proto.caffe_pb2.SolverParameter()
    with open(os.path.join(REPO, rel)) as f:
        text_format.Merge(f.read(), msg)
    return msg


def test_committed_prototxt_is_up_to_date():
    out = _run("--check")
    assert out.returncode == 0, out.stderr


def test_check_names_changed_and_stale_files(tmp_path):
    root = str(tmp_path)
    assert _run("--net", "cifar10-resnet20", "--root", root).returncode == 0
    rel = "prototxt/cifar10-resnet20/solver.prototxt"
    assert _run("--check", "--net", "cifar10-resnet20", "--root", root).returncode == 0
    with open(os.path.join(root, rel), "a") as f:
        f.write("# edited by hand\n")
    out = _run("--check", "--net", "cifar10-resnet20", "--root", root)
    assert out.returncode == 1 and rel in out.stderr and "differs" in out.stderr
    stale = tmp_path / "prototxt" / "old-net" / "train_val.prototxt"
    stale.parent.mkdir()
    stale.write_text("")
    files = cat.generate(cat.select("cifar10-resnet20"))
    problems = check(files, root, full=True)
    assert any("prototxt/old-net/train_val.prototxt" in p and "stale" in p for p in problems)
    assert check(files, root, full=False) == [f"{rel}: differs from the generator output; "
                                              "run 'python tools/gen_prototxt.py'"]


@pytest.mark.parametrize("args, words", [
    (["--net", "resnet21"], ["--net", "unknown net 'resnet21'"]),
    (["--depth", "21"], ["--depth", "6n+2"]),
    (["--depth", "2"], ["--depth", "6n+2"]),
    (["--depth", "abc"], ["--depth", "not a whole number"]),
    (["--net", "googlenet", "--depth", "20"], ["--depth", "ResNet family only"]),
])
def test_bad_options_give_one_line(args, words, tmp_path):
    out = _run(*args, "--root", str(tmp_path))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("gen_prototxt.py: error: ")
    for w in words:
        assert w in lines[0]
    assert not any(tmp_path.iterdir())


def test_help_explains_every_option():
    out = _run("--help")
    assert out.returncode == 0
    for opt in ("--net", "--depth", "--check", "--summary", "--list", "--root"):
        assert opt in out.stdout
    assert "examples:" in out.stdout and "repository root" in out.stdout


def test_custom_depth_goes_where_asked(tmp_path):
    out = _run("--depth", "8", "--root", str(tmp_path))
    assert out.returncode == 0, out.stderr
    got = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.prototxt"))
    assert "prototxt/cifar10-resnet8/train_val.prototxt" in got
    assert "prototxt/cifar10-resnet8-pattern-mean/finetune_solver.prototxt" in got


def test_catalog_entries_point_at_committed_files(entries, caffe):
    names = {e.name for e in entries}
    assert {"cifar10-resnet20", "cifar10-resnet20-pattern-mean", "cifar10-resnet110",
            "googlenet", "googlenet-3x3-pattern-mean", "googlenet-fix-3x3-pattern",
            "sepnet-r", "sepnet-b", "inception-bn", "mobilenet-0.5", "squeezenet",
            *cat.CIFAR10_SMALL} <= names
    assert len(names) == len(entries)
    for e in entries:
        for rel in (e.train_val, e.deploy, e.solver):
            assert os.path.isfile(os.path.join(REPO, rel)), (e.name, rel)
        if e.kind == "full":
            assert e.parent is None and e.finetune_solver is None and not e.pattern_layers
            own = e.solver
        else:
            parent = cat.by_name(entries)[e.parent]
            assert parent.kind == "full" and e.solver == parent.solver
            assert e.pattern_layers and e.scale_mode in ("MEAN", "OFFSET")
            assert (e.offset is None) == (e.scale_mode == "MEAN")
            own = e.finetune_solver
        s = _read(caffe, own, "solver")
        assert s.net == e.train_val
        # a BQ entry is its pattern net's files (8-bit weights live in models)
        owner = e.quantizes if e.kind == "bq" else e.name
        assert e.kind != "bq" or (e.train_val, e.deploy) == (
            cat.by_name(entries)[owner].train_val, cat.by_name(entries)[owner].deploy)
        assert s.snapshot_prefix.startswith(f"runs/{owner}/")
        assert s.solver_mode == caffe.proto.caffe_pb2.SolverParameter.CPU
        assert e.dataset in ("cifar10", "imagenet") and e.derives_from == e.parent


def test_sepnet_solver_is_the_documented_run(entries, caffe):
    s = _read(caffe, "prototxt/sepnet_solver.prototxt", "solver")
    assert s.net == cat.by_name(entries)["sepnet-r"].train_val
    assert cat.by_name(entries)["sepnet-r"].solver == "prototxt/sepnet_solver.prototxt"


def test_data_layers_read_repo_relative_paths(entries, caffe):
    want = {
        "cifar10": {caffe.TRAIN: ("data/cifar10/v3/train_lmdb",
                                  "data/cifar10/v3/mean_train.binaryproto", True),
                    caffe.TEST: ("data/cifar10/v3/test_lmdb",
                                 "data/cifar10/v3/mean_test.binaryproto", False)},
        "imagenet": {caffe.TRAIN: ("data/ilsvrc12/train_lmdb", "", True),
                     caffe.TEST: ("data/ilsvrc12/val_lmdb", "", False)},
    }
    lmdb = caffe.proto.caffe_pb2.DataParameter.LMDB
    for e in entries:
        net = _read(caffe, e.train_val)
        data = [lp for lp in net.layer if lp.type == "Data"]
        assert len(data) == 2, e.name
        for lp in data:
            source, mean, mirror = want[e.dataset][lp.include[0].phase]
            assert lp.data_param.source == source and lp.data_param.backend == lmdb
            assert lp.transform_param.mean_file == mean
            assert lp.transform_param.mirror == mirror
            assert lp.transform_param.crop_size == (32 if e.dataset == "cifar10" else 224)
            if e.dataset == "imagenet":
                assert list(lp.transform_param.mean_value) == [104, 117, 123]


def test_pattern_layers_are_written_as_specified(entries, caffe):
    pb = caffe.proto.caffe_pb2
    for e in entries:
        if e.kind == "full":
            continue
        net = _read(caffe, e.train_val)
        layers = {lp.name: lp for lp in net.layer}
        for name in e.pattern_layers:
            lp = layers[name]
            w = lp.param[0]
            assert (w.lr_mult, w.decay_mult) == (0, 0), (e.name, name)
            if e.kind == "fix-pattern":
                assert lp.type == "Convolution" and len(lp.param) == 2
                continue
            assert lp.type == "BinaryPatternConvolution", (e.name, name)
            bp = lp.binary_pattern_param
            assert bp.train_mode == pb.BinaryPatternParameter.FIXED
            assert bp.scale_mode == getattr(pb.BinaryPatternParameter, e.scale_mode)
            n_bias = 1 if lp.convolution_param.bias_term else 0
            if e.scale_mode == "MEAN":     # W, [bias,] alpha
                assert len(lp.param) == 2 + n_bias
                assert (lp.param[-1].lr_mult, lp.param[-1].decay_mult) == (1, 0)
                assert not bp.HasField("offset")
            else:                          # W, [bias]
                assert len(lp.param) == 1 + n_bias and bp.offset == pytest.approx(e.offset)
            assert bp.allow_1x1 == (lp.convolution_param.kernel_size[0] == 1)
        # what stays full precision
        keep = {"resnet": ["conv1"] + [n for n in layers if n.endswith("_conv_proj")],
                "googlenet": ["conv1/7x7_s2", "conv2/3x3_reduce", "conv2/3x3", "loss1/conv"],
                "inception-bn": ["conv1/7x7_s2", "conv2/3x3"],
                "sepnet": ["conv1"]}[e.family]
        for name in keep:
            assert layers[name].type == "Convolution" and name not in e.pattern_layers
            assert layers[name].param[0].lr_mult == 1
        others = [lp for lp in net.layer if lp.type == "BinaryPatternConvolution"
                  or (lp.type == "Convolution" and lp.param and lp.param[0].lr_mult == 0)]
        assert sorted(lp.name for lp in others) == sorted(e.pattern_layers)


def test_missing_data_names_the_paths(entries, tmp_path):
    e = cat.by_name(entries)["cifar10-resnet20"]
    assert cat.missing_data(e, str(tmp_path)) == [
        "data/cifar10/v3/train_lmdb", "data/cifar10/v3/test_lmdb",
        "data/cifar10/v3/mean_train.binaryproto", "data/cifar10/v3/mean_test.binaryproto"]
    (tmp_path / "data" / "cifar10" / "v3" / "train_lmdb").mkdir(parents=True)
    assert "data/cifar10/v3/train_lmdb" not in cat.missing_data(e, str(tmp_path))
