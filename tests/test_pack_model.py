"""Packed .sepnet files of a trained tiny CIFAR net: exact round trips, size on
disk against model_summary, the BQ error, and one-line errors for truncated,
corrupt, foreign and mismatched files."""
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

from conftest import run_tool





@pytest.fixture(scope="module")
def models(cifar, tmp_path_factory):
    """The trained net, its MEAN pattern model and its +/-0.06 stock model."""
    binarize = "quant_pattern"
    d = tmp_path_factory.mktemp("pack")
    out = {"full": (cifar["prototxt"], cifar["model"])}
    for name, how in (("mean", ["--scale", "mean"]), ("offset", ["--offset", "0.06"])):
        assert run_tool(binarize, ["--model", cifar["model"], "--prototxt", cifar["prototxt"],
                                   "--filter", "3x3", "5x5", "-o", d / name] + how) == 0
        out[name] = (str(d / f"{name}.prototxt"), str(d / f"{name}.caffemodel"))
    return d, out


def pack_unpack(models, name, bq=False):
    packing = "pack_model"
    d, m = models
    prototxt, model = m[name]
    packed = d / f"{name}{'_bq' if bq else ''}.sepnet"
    back = d / f"{name}{'_bq' if bq else ''}_unpacked.caffemodel"
    flags = ["--bq"] if bq else []
    assert run_tool(packing, ["pack", prototxt, model, "-o", packed] + flags) == 0
    assert run_tool(packing, ["unpack", prototxt, packed, "-o", back]) == 0
    return prototxt, model, str(packed), str(back)


def outputs(caffe, prototxt, model, batches=2):
    """fc6 (logits), loss and accuracy of the TEST net on its first real batches."""
    net = caffe.Net(prototxt, caffe.TEST, weights=model)
    out = []
    for _ in range(batches):
        net.forward()
        out.append({b: net.blobs[b].data.copy() for b in ("fc6", "loss", "accuracy")})
    return out, {k: [b.data.copy() for b in v] for k, v in net.params.items()}


@pytest.mark.parametrize("name", ["mean", "offset", "full"])
def test_round_trip_is_exact(caffe, models, name):
    prototxt, model, packed, back = pack_unpack(models, name)
    (want, pw), (got, pg) = outputs(caffe, prototxt, model), outputs(caffe, prototxt, back)
    for a, b in zip(want, got):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    for layer in pw:
        for x, y in zip(pw[layer], pg[layer]):
            assert x.tobytes() == y.tobytes(), layer


@pytest.mark.parametrize("name,bq", [("mean", False), ("mean", True), ("offset", False),
                                     ("offset", True), ("full", False)])
def test_size_on_disk_matches_the_summary(models, name, bq):
    from sepnets.compress.sizes import summarize
    prototxt, model, packed, _ = pack_unpack(models, name, bq)
    computed = summarize(prototxt, model, bq=bq).nbytes
    on_disk = os.path.getsize(packed)
    from sepnets.compress.pack_model import framing_bytes
    framing = framing_bytes(open(packed, "rb").read(), packed)
    print(f"{name}{' BQ' if bq else ''}: {on_disk} bytes on disk, {computed} computed "
          f"({100 * (on_disk - computed) / computed:+.2f}%), framing {framing} bytes, "
          f"caffemodel {os.path.getsize(model)} bytes")
    # the bound docs/compression.md states: computed + framing, nothing else
    assert computed <= on_disk <= computed + framing
    assert on_disk - computed >= framing - 8 * len(read_layers(packed))
    if name != "full":
        assert on_disk < os.path.getsize(model) / (3 if bq else 1.2)


def read_layers(packed):
    from sepnets.compress.pack_model import read_packed
    return read_packed(open(packed, "rb").read(), packed)[1]


def test_bq_error_is_the_quantization_error(caffe, models):
    from sepnets.compress.pack_model import quantize_uint8
    prototxt, model, packed, back = pack_unpack(models, "mean", bq=True)
    (want, pw), (got, pg) = outputs(caffe, prototxt, model, 4), outputs(caffe, prototxt, back, 4)
    for layer in pw:
        for i, (x, y) in enumerate(zip(pw[layer], pg[layer])):
            if i == 0 and layer in ("conv4", "fc5", "fc6"):
                scale = quantize_uint8(x)[1]
                err = np.abs(x - y).max()
                assert 0 < err <= scale / 2 * (1 + 1e-4), layer
            else:
                assert x.tobytes() == y.tobytes(), layer
    logit_err = max(np.abs(a["fc6"] - b["fc6"]).max() for a, b in zip(want, got))
    logit_max = max(np.abs(a["fc6"]).max() for a in want)
    agree = np.mean([np.mean(a["fc6"].argmax(1) == b["fc6"].argmax(1)) for a, b in zip(want, got)])
    print(f"BQ round trip: max |logit error| {logit_err:.4g} (max |logit| {logit_max:.4g}), "
          f"top-1 agreement {agree:.3f} over {len(want)} batches")
    assert 0 < logit_err < 0.05 * logit_max
    assert agree >= 0.9


def test_compare_and_info_commands(models, capsys):
    packing = "pack_model"
    prototxt, model, packed, _ = pack_unpack(models, "mean")
    assert run_tool(packing, ["compare", prototxt, model, packed, "--blob", "fc6"]) == 0
    assert "fc6: max |caffemodel - packed| = 0 (exact)" in capsys.readouterr().out
    assert run_tool(packing, ["info", packed]) == 0
    out = capsys.readouterr().out
    assert "conv2: sign 32x16x5x5, fp32 32, fp32 32" in out and "fc5: fp32 32x2048" in out


# ------------------------------------------------------------------ bad input

def _fails(capsys, module, argv, *needles):
    assert run_tool(module, argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, err


def test_truncated_corrupt_foreign_and_newer_files(models, capsys, tmp_path):
    packing = "pack_model"
    prototxt, model, packed, _ = pack_unpack(models, "mean")
    data = open(packed, "rb").read()
    out = tmp_path / "never.caffemodel"

    def attempt(content, *needles):
        f = tmp_path / "bad.sepnet"
        f.write_bytes(content)
        _fails(capsys, packing, ["unpack", prototxt, f, "-o", out], "bad.sepnet", *needles)

    for cut in (5, 20, 31, 32, 1000, len(data) - 1):
        attempt(data[:cut], "truncated")
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    attempt(bytes(flipped), "checksum mismatch")
    head = bytearray(data)
    head[12] ^= 1
    attempt(bytes(head), "header checksum")
    attempt(data + b"\0", "after the end")
    attempt(open(model, "rb").read(), "not a SEP-Nets packed model")
    attempt(b"layer { name: 'x' }\n", "not a SEP-Nets packed model")
    attempt(b"", "not a SEP-Nets packed model")
    newer = bytearray(data[:28])
    newer[8:10] = struct.pack("<H", 2)
    attempt(bytes(newer) + struct.pack("<I", zlib.crc32(bytes(newer))) + data[32:],
            "version 2")
    assert not out.exists()


def test_mismatched_prototxt(cifar, models, capsys, tmp_path):
    packing = "pack_model"
    prototxt, model, packed, _ = pack_unpack(models, "mean")
    out = tmp_path / "never.caffemodel"
    # the full-precision prototxt for a pattern file: conv layers lack alpha
    _fails(capsys, packing, ["unpack", cifar["prototxt"], packed, "-o", out], "do not match")
    renamed = tmp_path / "renamed.prototxt"
    renamed.write_text(open(prototxt).read().replace('"fc6"', '"fc6b"'))
    _fails(capsys, packing, ["unpack", renamed, packed, "-o", out], "'fc6'", "lacks")
    # packing a model with the wrong prototxt
    _fails(capsys, packing, ["pack", cifar["prototxt"], model, "-o", tmp_path / "x.sepnet"],
           "do not match")
    _fails(capsys, packing, ["pack", prototxt, model, "-o", model], "overwrite an input")
    assert not out.exists() and not (tmp_path / "x.sepnet").exists()


def test_command_line_entry_point(models, repo_root, tmp_path):
    tool = os.path.join(repo_root, "tools", "pack_model.py")
    prototxt, model = models[1]["mean"]
    packed = tmp_path / "cli.sepnet"
    r = subprocess.run([sys.executable, tool, "pack", prototxt, model, "-o", str(packed)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "the summary computes" in r.stdout and packed.exists()
    bad = subprocess.run([sys.executable, tool, "unpack", prototxt, model, "-o",
                          str(tmp_path / "x.caffemodel")], capture_output=True, text=True)
    assert bad.returncode == 2 and "not a SEP-Nets packed model" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr


def frame(payload, count, version=1, flags=0):
    """A .sepnet with valid checksums around any payload: the reader must
    judge the records themselves, not lean on the CRCs."""
    from sepnets.compress.pack_model import MAGIC
    head = struct.pack("<8sHHIQI", MAGIC, version, flags, count, len(payload),
                       zlib.crc32(payload))
    return head + struct.pack("<I", zlib.crc32(head)) + payload


def record(name, blobs):
    """One layer record: blobs = [(encoding byte, dims, data bytes)]."""
    from sepnets.compress.pack_model import _varint
    out = _varint(len(name)) + name + bytes([len(blobs)])
    for enc, dims, data in blobs:
        out += bytes([enc, len(dims)]) + b"".join(_varint(d) for d in dims) + data
    return out


@pytest.mark.parametrize("blob, needle", [
    ((0, [1] * 200, b""), "200 axes"),
    ((0, [1] * 33, b""), "33 axes"),
    ((0, [2 ** 40] * 4, b"\0" * 16), "exceeds Caffe's 2147483647 elements"),
    ((0, [2 ** 63 - 1, 2 ** 63 - 1], b""), "exceeds"),
    ((1, [2 ** 62, 3], b"\0" * 8), "exceeds"),
    ((0, [0, 2 ** 30, 2 ** 30], b""), "exceeds"),
    ((0, [1000, 1000], b"\0" * 16), "needs 4000000 bytes, 16 left"),
    ((1, [10 ** 6, 9], b"\0" * 8), "needs 1125000 bytes"),
    ((3, [10 ** 8], b"\0" * 5), "needs 100000000 bytes"),
])
def test_valid_checksums_absurd_dimensions(tmp_path, blob, needle):
    """Crafted dims used to reach numpy as an overflow or a reshape/unpackbits
    error (a traceback), or a request for petabytes."""
    from sepnets.compress.pack_model import read_packed
    from sepnets.errors import UserError
    with pytest.raises(UserError, match=f"corrupt: .*{needle}"):
        read_packed(frame(record(b"conv1", [blob]), 1), "crafted.sepnet")


def test_crafted_record_that_fits_reads_back():
    from sepnets.compress.pack_model import read_packed
    data = np.arange(6, dtype="<f4")
    flags, layers = read_packed(frame(record(b"fc", [(0, [2, 3], data.tobytes())]), 1), "x")
    (name, blobs), = layers
    assert name == "fc" and blobs[0][1] == (2, 3)
    np.testing.assert_array_equal(blobs[0][2], data.reshape(2, 3))
