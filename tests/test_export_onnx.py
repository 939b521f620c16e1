"""tools/export_onnx.py: onnxruntime on the exported graph computes what Caffe's
forward computes, for every generated deploy net, the trained ResNet-20 models,
Caffe's pooling edge cases and every supported layer type; pattern layers are
stored at pattern-bits per weight; bad input is one line and writes nothing."""
import glob
import os
import re
import subprocess
import sys

import numpy as np
import onnx
import pytest
from google.protobuf import text_format

from sepnets import REPO_ROOT
from sepnets.deploy import netdef, onnx_export, runtime, trained, weights
from sepnets.netgen.catalog import catalog

TOOL = os.path.join(REPO_ROOT, "tools", "export_onnx.py")
TOL = 1e-4
ENTRIES = catalog()
TRAINED = trained.trained_models()


def _logit_blobs(inet):
    """The bottoms of Softmax layers: compared too, since a saturated softmax
    would hide a wrong logit."""
    return [layer.bottom[0] for layer in inet.net.layer if layer.type == "Softmax"]


def _compare(inet, arrays, shapes, source, bits=2, bq=False, caffe_arrays=None, batch=2,
             seed=1, cnet=None):
    """Max relative difference, per compared blob, of onnxruntime vs Caffe."""
    extra = _logit_blobs(inet)
    model = onnx_export.build_model(inet, arrays, shapes, bits, bq, source, extra)
    ort = runtime.OnnxBackend(model, threads=1)
    cb = runtime.CaffeBackend(inet, caffe_arrays or arrays, source, cnet)
    rng = np.random.default_rng(seed)
    feeds = {name: rng.standard_normal((batch,) + tuple(shapes[name][1:])).astype(np.float32)
             for name in cb.inputs}
    got = ort.run(feeds)
    want = cb.run(feeds)
    for blob in extra:
        want[blob] = cb.cnet.blobs[blob].data.copy()
    assert set(want) <= set(got), (sorted(want), sorted(got))
    return model, {k: runtime.max_rel_diff(got[k], want[k]) for k in want}


def _random_net(deploy, seed=0):
    """(InferenceNet, random {layer: [arrays]}, blob shapes, the pycaffe Net)."""
    inet = netdef.inference_net(deploy)
    cnet = netdef.caffe_net(inet, deploy)
    return inet, runtime.random_weights(inet, cnet, seed), netdef.blob_shapes(cnet), cnet


def _stored(model):
    return onnx_export.stored_bytes(model)


def _baked(arrays, entry):
    out = dict(arrays)
    for name in entry.pattern_layers:
        w = arrays[name][0]
        out[name] = [weights.io.bake(w, np.full(w.shape[0], entry.offset, np.float32))] \
            + list(arrays[name][1:])
    return out


# ------------------------------------------------------- every generated net

def test_the_catalog_covers_every_deploy_prototxt():
    files = set(glob.glob(os.path.join(REPO_ROOT, "prototxt", "*", "deploy.prototxt")))
    assert files and files == {os.path.join(REPO_ROOT, e.deploy) for e in ENTRIES}


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_generated_deploy_net_matches_caffe(entry):
    """Random weights (BatchNorm statistics, Scale and some alphas randomised too),
    batch 2, INT2 patterns. Fix-pattern nets: the parent's deploy with the pattern
    layers' weights baked to +/-offset, which the exporter must detect."""
    deploy = os.path.join(REPO_ROOT, entry.deploy)
    inet, arrays, shapes, cnet = _random_net(deploy)
    if entry.kind == "fix-pattern":
        arrays = _baked(arrays, entry)
    model, diffs = _compare(inet, arrays, shapes, deploy, cnet=cnet)
    assert max(diffs.values()) < TOL, diffs
    n_patterns = sum(1 for kind, _ in _stored(model).values() if kind == "pattern")
    assert n_patterns == len(entry.pattern_layers)
    assert model.opset_import[0].version == 25 and model.ir_version == 13


def test_fp32_int4_int8_exports_match_caffe():
    deploy = os.path.join(REPO_ROOT, "prototxt/cifar10-resnet20-pattern-mean/deploy.prototxt")
    inet, arrays, shapes, _ = _random_net(deploy, seed=3)
    for bits, opset in ((32, 21), (8, 21), (4, 21)):
        model, diffs = _compare(inet, arrays, shapes, deploy, bits)
        assert max(diffs.values()) < TOL, (bits, diffs)
        assert model.opset_import[0].version == opset


def test_bq_matches_caffe_with_dequantized_weights():
    """--bq: INT8 1x1/FC weights; Caffe runs the same net with those weights
    dequantized back into it. The quantization must really change them."""
    deploy = os.path.join(REPO_ROOT, "prototxt/sepnet-b/deploy.prototxt")
    inet, arrays, shapes, _ = _random_net(deploy, seed=4)
    deq = weights.bq_dequantized(inet, arrays)
    changed = [n for n in deq if not all(np.array_equal(a, b) for a, b in zip(deq[n], arrays[n]))]
    assert "fc" in changed and len(changed) >= 10
    model, diffs = _compare(inet, arrays, shapes, deploy, bq=True, caffe_arrays=deq)
    assert max(diffs.values()) < TOL, diffs
    kinds = [k for k, _ in _stored(model).values()]
    assert kinds.count("int8") == len(changed)
    _, plain = _compare(inet, arrays, shapes, deploy, bq=True)   # vs the fp32 weights
    assert max(plain.values()) > TOL                             # the 8 bits do show


# ----------------------------------------------------------- trained models

def test_trained_models_are_in_the_repo():
    """Every folder of models/ holds a model, and the table of their nets
    covers exactly those folders."""
    folders = sorted(d for d in os.listdir(os.path.join(REPO_ROOT, "models"))
                     if os.path.isdir(os.path.join(REPO_ROOT, "models", d)))
    assert len(folders) >= 6
    assert [m.name for m in TRAINED] == folders == sorted(trained.NETS)


@pytest.mark.parametrize("m", TRAINED, ids=lambda m: m.name)
def test_trained_model_net_is_the_one_its_readme_names(m):
    """The table and the model's readme name the same prototxt/ folder, one of
    the generated nets; the readme's caffemodel is the file the table uses."""
    readme = open(os.path.join(REPO_ROOT, "models", m.name, "readme.md")).read()
    named = set(re.findall(r"for the net in `prototxt/([^/`]+)/", readme))
    assert named == {m.net}, (m.name, named)
    assert f"\ncaffemodel: {os.path.basename(m.caffemodel)}\n" in readme
    assert m.net in {e.name for e in ENTRIES}
    assert os.path.join(REPO_ROOT, m.train_val) in {os.path.join(REPO_ROOT, e.train_val)
                                                    for e in ENTRIES}


@pytest.mark.parametrize("m", TRAINED, ids=lambda m: m.name)
def test_trained_model_is_the_file_its_readme_names(m):
    """The caffemodel's sha1 is the one its readme gives (a model replaced
    without its readme, or the other way round, shows here)."""
    import hashlib
    readme = open(os.path.join(REPO_ROOT, "models", m.name, "readme.md")).read()
    digest = hashlib.sha1(open(m.path(m.caffemodel), "rb").read()).hexdigest()
    assert f"\nsha1: {digest}\n" in readme, m.name
    assert f"prints `{digest}`" in readme, m.name


def test_a_model_without_a_net_is_one_clear_error(monkeypatch):
    """A models/ folder the table lacks is named, with where to add it."""
    from sepnets.errors import UserError
    monkeypatch.setattr(trained, "model_folders", lambda: ["cifar10-resnet20-new"])
    with pytest.raises(UserError) as e:
        trained.trained_models()
    assert "models/cifar10-resnet20-new" in str(e.value) and "NETS" in str(e.value)


@pytest.mark.parametrize("m", TRAINED, ids=lambda m: m.name)
def test_trained_resnet20_matches_caffe(m):
    """The models in models/ through the train_val of their net (TEST phase;
    the data layer becomes the input); stock Convolutions binarized by the
    runner (bipattern, refined) are recognised as patterns."""
    proto = m.path(m.train_val)
    inet, cnet, arrays = netdef.load(proto, m.path(m.caffemodel), (3, 32, 32))
    shapes = netdef.blob_shapes(cnet)
    model, diffs = _compare(inet, arrays, shapes, proto, cnet=cnet)
    assert max(diffs.values()) < TOL, diffs
    n_patterns = sum(1 for kind, _ in _stored(model).values() if kind == "pattern")
    entry = next(e for e in ENTRIES if e.name == m.net)
    assert n_patterns == len(entry.pattern_layers), m.name
    assert (n_patterns == 0) == (entry.kind == "full"), m.name


# ------------------------------------------------------------------ storage

@pytest.mark.parametrize("bits", [2, 4, 8, 32])
def test_pattern_storage_is_pattern_bits_per_weight(bits):
    """Serialized initializers of the pattern layers (integers + fp32 scale,
    names and dims included) within 5% of bits per weight + 32 per filter."""
    deploy = os.path.join(REPO_ROOT, "prototxt/cifar10-resnet20-pattern-mean/deploy.prototxt")
    inet, arrays, shapes, _ = _random_net(deploy)
    model = onnx_export.build_model(inet, arrays, shapes, bits, False, deploy)
    stored = _stored(model)
    entry = next(e for e in ENTRIES if e.name == "cifar10-resnet20-pattern-mean")
    got = want = 0
    for name in entry.pattern_layers:
        w = arrays[name][0]
        got += stored[name][1]
        want += w.size * bits / 8 + (4 * w.shape[0] if bits != 32 else 0)
    assert abs(got - want) / want < 0.05, (got, want)
    inits = {t.name: t for t in model.graph.initializer}
    q = inits["map16_1_conv_a.W" + (f".int{bits}" if bits != 32 else "")]
    n = arrays["map16_1_conv_a"][0].size
    assert len(q.raw_data) == (n * bits + 7) // 8


# ------------------------------------------------------------------ pooling

#: (H, kernel, stride, pad): ceil rounding adds a window, the last window is
#: dropped for starting in the padding, AVE windows overhang the padded input.
POOL_CASES = [(7, 3, 2, 0), (6, 3, 2, 0), (5, 2, 2, 1), (8, 3, 3, 1), (8, 3, 2, 1),
              (10, 3, 2, 1), (7, 2, 2, 0), (9, 4, 3, 1), (10, 4, 3, 2), (5, 3, 1, 1),
              (112, 3, 2, 0), (14, 3, 2, 0)]


def _pool_net(cases, method):
    from sepnets.deploy import _caffeio as io
    pb2 = io.caffe_pb2()
    net = pb2.NetParameter(name="pools")
    for i, (h, k, s, p) in enumerate(cases):
        inp = net.layer.add(name=f"in{i}", type="Input")
        inp.top.append(f"x{i}")
        inp.input_param.shape.add().dim.extend([1, 3, h, h + 1])
        layer = net.layer.add(name=f"pool{i}", type="Pooling")
        layer.bottom.append(f"x{i}")
        layer.top.append(f"y{i}")
        pp = layer.pooling_param
        pp.pool, pp.kernel_size, pp.stride, pp.pad = method, k, s, p
    return net


@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_pooling_edge_shapes_match_caffe(method, tmp_path):
    from sepnets.deploy import _caffeio as io
    pb2 = io.caffe_pb2()
    net = _pool_net(POOL_CASES, getattr(pb2.PoolingParameter, method))
    path = str(tmp_path / "pools.prototxt")
    with open(path, "w") as f:
        f.write(text_format.MessageToString(net))
    inet = netdef.inference_net(path)
    cnet = netdef.caffe_net(inet, path)
    shapes = netdef.blob_shapes(cnet)
    # the cases are edge cases: Caffe's size differs from the floor formula
    # (ONNX's default) in some, and windows overhang the padded input in some
    floor_differs = overhang = dropped = 0
    for i, (h, k, s, p) in enumerate(POOL_CASES):
        out = shapes[f"y{i}"][2]
        floor_differs += out != (h + 2 * p - k) // s + 1
        overhang += (out - 1) * s + k > h + 2 * p
        dropped += out != -(-(h + 2 * p - k) // s) + 1     # last window began in the pad
    assert floor_differs >= 6 and overhang >= 6 and dropped >= 3
    _, diffs = _compare(inet, {}, shapes, path, batch=2)
    assert max(diffs.values()) < 1e-5, diffs
    assert len(diffs) == len(POOL_CASES)


# --------------------------------------------------------- every layer type

LAYERS_NET = """
name: "all_layers"
input: "data"
input_shape { dim: 1 dim: 4 dim: 9 dim: 9 }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 8 kernel_size: 3 pad: 2 dilation: 2 group: 2 stride: 1
                      weight_filler { type: "msra" } bias_filler { type: "constant" value: 0.1 } } }
layer { name: "split" type: "Split" bottom: "conv" top: "c1" top: "c2" }
layer { name: "bn" type: "BatchNorm" bottom: "c1" top: "bn" }
layer { name: "scale" type: "Scale" bottom: "bn" top: "bn" scale_param { bias_term: true } }
layer { name: "relu" type: "ReLU" bottom: "bn" top: "bn" relu_param { negative_slope: 0.1 } }
layer { name: "pat" type: "BinaryPatternConvolution" bottom: "bn" top: "pat"
  convolution_param { num_output: 8 kernel_h: 3 kernel_w: 5 pad_h: 1 pad_w: 2 stride: 2
                      weight_filler { type: "msra" } bias_term: true }
  binary_pattern_param { scale_mode: OFFSET offset: 0.05 } }
layer { name: "ste" type: "BinaryPatternConvolution" bottom: "c2" top: "ste"
  convolution_param { num_output: 8 kernel_size: 3 pad: 1 stride: 2 weight_filler { type: "msra" } }
  binary_pattern_param { scale_mode: MEAN train_mode: STE } }
layer { name: "sum" type: "Eltwise" bottom: "pat" bottom: "ste" top: "sum"
  eltwise_param { operation: SUM coeff: 0.5 coeff: -2 } }
layer { name: "prod" type: "Eltwise" bottom: "pat" bottom: "ste" bottom: "sum" top: "prod"
  eltwise_param { operation: PROD } }
layer { name: "max" type: "Eltwise" bottom: "sum" bottom: "prod" top: "max"
  eltwise_param { operation: MAX } }
layer { name: "cat" type: "Concat" bottom: "max" bottom: "sum" top: "cat" }
layer { name: "lrn" type: "LRN" bottom: "cat" top: "lrn"
  lrn_param { local_size: 3 alpha: 0.01 beta: 0.75 k: 2 } }
layer { name: "bn2" type: "BatchNorm" bottom: "lrn" top: "bn2" }
layer { name: "sc2" type: "Scale" bottom: "bn2" top: "sc2" scale_param { bias_term: false } }
layer { name: "drop" type: "Dropout" bottom: "sc2" top: "sc2" dropout_param { dropout_ratio: 0.5 } }
layer { name: "gpool" type: "Pooling" bottom: "sc2" top: "gpool" pooling_param { pool: AVE global_pooling: true } }
layer { name: "flat" type: "Flatten" bottom: "sc2" top: "flat" }
layer { name: "resh" type: "Reshape" bottom: "gpool" top: "resh" reshape_param { shape { dim: 0 dim: -1 } } }
layer { name: "ip" type: "InnerProduct" bottom: "flat" top: "ip"
  inner_product_param { num_output: 6 weight_filler { type: "xavier" } } }
layer { name: "ip2" type: "InnerProduct" bottom: "resh" top: "ip2"
  inner_product_param { num_output: 6 transpose: true weight_filler { type: "xavier" } } }
layer { name: "both" type: "Eltwise" bottom: "ip" bottom: "ip2" top: "both" }
layer { name: "sig" type: "Sigmoid" bottom: "both" top: "sig" }
layer { name: "prob" type: "Softmax" bottom: "sig" top: "prob" }
layer { name: "tanh" type: "TanH" bottom: "ip2" top: "tanh" }
"""


def test_every_supported_layer_type_matches_caffe(tmp_path):
    """One net with each layer type the exporter handles, in the legacy
    input_shape header; BatchNorm 'bn' cannot fold (its convolution's output is
    split), 'bn2' follows a Concat/LRN: both become BatchNormalization."""
    path = str(tmp_path / "layers.prototxt")
    with open(path, "w") as f:
        f.write(LAYERS_NET)
    inet = netdef.inference_net(path)
    cnet = netdef.caffe_net(inet, path)
    arrays = runtime.random_weights(inet, cnet, 5)
    shapes = netdef.blob_shapes(cnet)
    for bits in (2, 32):
        model, diffs = _compare(inet, arrays, shapes, path, bits)
        assert max(diffs.values()) < TOL, diffs
        assert set(diffs) == {"prob", "tanh", "sig"}
    ops = {n.op_type for n in model.graph.node}
    assert {"BatchNormalization", "LRN", "Concat", "Max", "Mul", "Sum", "LeakyRelu",
            "GlobalAveragePool", "Gemm", "Reshape", "Softmax", "Tanh"} <= ops


def _write_model(tmp_path, text, name="net", seed=0):
    """A prototxt and a caffemodel (random weights) for it, as Caffe saves them."""
    path = str(tmp_path / f"{name}.prototxt")
    with open(path, "w") as f:
        f.write(text)
    inet = netdef.inference_net(path)
    cnet = netdef.caffe_net(inet, path)
    arrays = runtime.random_weights(inet, cnet, seed)
    from sepnets.deploy import _caffeio as io
    io.set_net_params(cnet, arrays, path)
    model = str(tmp_path / f"{name}.caffemodel")
    cnet.save(model)
    return path, model


LEGACY_NET = """
name: "legacy"
input: "data"
input_dim: 1
input_dim: 3
input_dim: 12
input_dim: 12
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 6 kernel_size: 3 stride: 2 weight_filler { type: "msra" } } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" }
layer { name: "sc1" type: "Scale" bottom: "conv1" top: "conv1" scale_param { bias_term: true } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "fc" type: "InnerProduct" bottom: "pool1" top: "fc"
  inner_product_param { num_output: 4 weight_filler { type: "xavier" } } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
"""


def _run(*args):
    res = subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True,
                         timeout=300)
    return res.returncode, res.stdout, res.stderr


def test_legacy_input_dim_prototxt_exports_and_matches_caffe(tmp_path, caffe):
    """The command line on a hand-built legacy-header net; Caffe reads that
    header itself, so its own net of the original file is the reference."""
    proto, model = _write_model(tmp_path, LEGACY_NET, "legacy")
    out = str(tmp_path / "legacy.onnx")
    rc, stdout, stderr = _run(proto, model, "-o", out)
    assert rc == 0, stderr
    assert "wrote" in stdout
    m = onnx.load(out)
    onnx.checker.check_model(m, full_check=True)
    assert [i.name for i in m.graph.input] == ["data"]
    ref = caffe.Net(proto, model, caffe.TEST)
    x = np.random.default_rng(0).standard_normal((2, 3, 12, 12)).astype(np.float32)
    ref.blobs["data"].reshape(*x.shape)
    ref.blobs["data"].data[...] = x
    want = ref.forward()["prob"].copy()
    logits = ref.blobs["fc"].data.copy()
    got = runtime.OnnxBackend(out, threads=1).run({"data": x})["prob"]
    assert runtime.max_rel_diff(got, want) < TOL
    assert not np.allclose(logits, logits[:, :1])   # a real, not a flat, output
    # the BatchNorm and Scale were folded into conv1
    assert not any(n.op_type == "BatchNormalization" for n in m.graph.node)


# ---------------------------------------------------------------- bad input

def _one_line_error(rc, stdout, stderr, *words):
    assert rc != 0
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def test_unsupported_layer_names_layer_and_type(tmp_path):
    text = LEGACY_NET.replace('layer { name: "relu1" type: "ReLU"',
                              'layer { name: "prelu1" type: "PReLU"')
    proto, model = _write_model(tmp_path, text, "prelu")
    out = tmp_path / "x.onnx"
    line = _one_line_error(*_run(proto, model, "-o", str(out)), "prelu1", "PReLU", proto)
    assert "unsupported" in line
    assert not out.exists()


@pytest.mark.parametrize("old, new, words", [
    ("pool: AVE kernel_size: 3 stride: 2 pad: 1", "pool: STOCHASTIC kernel_size: 3 stride: 2",
     ("pool1", "Pooling", "STOCHASTIC")),
    ('name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" }',
     'name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" '
     'batch_norm_param { use_global_stats: false } }', ("bn1", "BatchNorm", "use_global_stats")),
], ids=["stochastic-pooling", "batchnorm-batch-statistics"])
def test_what_onnx_cannot_express_is_refused(tmp_path, old, new, words):
    assert old in LEGACY_NET
    proto, model = _write_model(tmp_path, LEGACY_NET.replace(old, new), "refused")
    out = tmp_path / "x.onnx"
    _one_line_error(*_run(proto, model, "-o", str(out)), *words)
    assert not out.exists()


def test_prototxt_caffemodel_mismatch(tmp_path):
    proto, model = _write_model(tmp_path, LEGACY_NET, "a")
    other = LEGACY_NET.replace("num_output: 6", "num_output: 5")
    proto_b = str(tmp_path / "b.prototxt")
    with open(proto_b, "w") as f:
        f.write(other)
    out = tmp_path / "x.onnx"
    _one_line_error(*_run(proto_b, model, "-o", str(out)), "conv1", "do not match")
    assert not out.exists()


def test_missing_file_and_output_equal_to_input(tmp_path):
    proto, model = _write_model(tmp_path, LEGACY_NET, "a")
    out = tmp_path / "x.onnx"
    _one_line_error(*_run(proto, str(tmp_path / "nope.caffemodel"), "-o", str(out)),
                    "nope.caffemodel", "not found")
    assert not out.exists()
    before = open(model, "rb").read()
    _one_line_error(*_run(proto, model, "-o", model), "overwrite")
    assert open(model, "rb").read() == before


# ------------------------------------------------------------- size report

def test_size_report_figures_are_the_files_the_tools_write(tmp_path):
    """The size table's figures for a trained model equal the sizes of the files
    tools/export_onnx.py and tools/pack_model.py write for it."""
    from sepnets.deploy import size_report
    m = trained.model("cifar10-resnet20-12000-refined")
    proto, model = m.path(m.train_val), m.path(m.caffemodel)
    [(row, kind, sizes, paper)] = size_report.trained_rows(models=[m])
    assert row == f"`{m.caffemodel}`"
    assert sizes["caffemodel"] == os.path.getsize(model)
    for col, bits in ((".onnx INT2", "2"), (".onnx fp32", "32")):
        out = str(tmp_path / f"m{bits}.onnx")
        rc, _, err = _run(proto, model, "-o", out, "--pattern-bits", bits, "--input-shape",
                          "3,32,32")
        assert rc == 0, err
        assert os.path.getsize(out) == sizes[col]
    packed = str(tmp_path / "m.sepnet")
    res = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "tools", "pack_model.py"),
                          "pack", proto, model, "-o", packed], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert os.path.getsize(packed) == sizes[".sepnet"]
    # the INT2 file is what the pattern layers promise: far below fp32
    assert sizes[".onnx INT2"] < 0.2 * sizes[".onnx fp32"]
    text = size_report.format_rows([(row, kind, sizes, paper)])
    assert f"{sizes['.onnx INT2'] / 1e6:.3f}" in text
