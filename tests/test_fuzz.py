"""Property tests (Hypothesis) of the readers of untrusted input: a damaged
or crafted .sepnet, a mutated Caffe log, and the numeric option validators.
Each input must give a clean UserError (or argparse's exit 2) or a correct
result, never another exception, each example within a deadline. Example
counts keep the whole file to well under a minute on one core."""
import argparse
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sepnets.caffeio.log import parse_text
from sepnets.cli import int_range
from sepnets.compress.pack_model import read_packed
from sepnets.errors import UserError

from test_pack_model import frame, record
from test_parse_logs import eval_log, train_log

FAST = settings(max_examples=300, deadline=500, database=None,
                suppress_health_check=[HealthCheck.too_slow])


W = np.linspace(-1, 1, 2 * 3 * 3 * 3, dtype="<f4")
ALPHA = np.array([0.5, 0.25], "<f4")
BITS = np.packbits(W > 0).tobytes()
# conv: sign pattern + alpha blob; bn: fp32; fc: BQ uint8 (scale, zero point, q)
LAYERS = [(b"conv1", [(1, [2, 3, 3, 3], BITS), (0, [2], ALPHA.tobytes())]),
          (b"conv2", [(2, [2, 3, 3, 3], BITS + ALPHA.tobytes())]),
          (b"bn", [(0, [4], np.arange(4, dtype="<f4").tobytes())]),
          (b"fc", [(3, [3, 2], struct.pack("<fB", 0.1, 3) + bytes(range(6)))])]
GOOD = frame(b"".join(record(n, b) for n, b in LAYERS), len(LAYERS))


def test_the_fuzzed_file_is_valid():
    """The seed of the mutations reads back to its weights (so mutations
    start from a real file, not one already rejected)."""
    _, layers = read_packed(GOOD, "good.sepnet")
    assert [n for n, _ in layers] == ["conv1", "conv2", "bn", "fc"]
    signs = np.where(W > 0, 1, -1).reshape(2, 3, 3, 3)
    np.testing.assert_array_equal(layers[0][1][0][2], signs * ALPHA.reshape(2, 1, 1, 1))
    np.testing.assert_array_equal(layers[1][1][0][2], signs * ALPHA.reshape(2, 1, 1, 1))
    np.testing.assert_allclose(layers[3][1][0][2], (np.arange(6) - 3).reshape(3, 2) * 0.1,
                               rtol=1e-6)


def _read_or_user_error(data):
    try:
        flags, layers = read_packed(data, "f.sepnet")
    except UserError as e:
        assert str(e).startswith("f.sepnet: ") and "\n" not in str(e)
        return None
    for name, blobs in layers:
        assert isinstance(name, str)
        for enc, shape, arr in blobs:
            assert arr.shape == tuple(shape)
    return layers


@FAST
@given(st.integers(0, len(GOOD) - 1))
def test_any_truncation_is_a_user_error(cut):
    assert _read_or_user_error(GOOD[:cut]) is None


@FAST
@given(st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(0, 7)),
                min_size=1, max_size=4))
def test_bit_flips_are_a_user_error(flips):
    data = bytearray(GOOD)
    for pos, bit in flips:
        data[pos] ^= 1 << bit
    if bytes(data) != GOOD:           # an even number of flips of one bit cancels
        assert _read_or_user_error(bytes(data)) is None


@FAST
@given(st.binary(max_size=200), st.integers(0, 2 ** 32 - 1), st.integers(0, 2 ** 16 - 1))
def test_crafted_payload_with_valid_checksums(payload, count, flags):
    """Checksums pass, so only the record checks stand between the bytes and
    numpy: any layer count, any record bytes."""
    _read_or_user_error(frame(payload, count, flags=flags))


dims = st.lists(st.one_of(st.integers(0, 8), st.integers(0, 2 ** 64 - 1)), max_size=40)


@FAST
@given(st.integers(0, 255), dims, st.binary(max_size=64))
def test_crafted_blob_headers(enc, shape, data):
    shape = [d % (2 ** 63) for d in shape]
    layers = _read_or_user_error(frame(record(b"x", [(enc, shape, data)]), 1))
    if layers is not None:
        (_, blobs), = layers
        assert tuple(blobs[0][1]) == tuple(shape)


# ------------------------------------------------------------- Caffe logs

LOGS = [train_log({0: (0.1, 0.5), 20: (0.8, 0.99)}, {0: 2.0, 10: 1.5, 20: 1.0}),
        eval_log({"accuracy": 0.4, "accuracy_top5": 0.8})]
line_edit = st.one_of(
    st.tuples(st.just("drop"), st.integers(0, 10 ** 6)),
    st.tuples(st.just("dup"), st.integers(0, 10 ** 6)),
    st.tuples(st.just("swap"), st.integers(0, 10 ** 6)),
    st.tuples(st.just("insert"), st.integers(0, 10 ** 6), st.text(max_size=80)),
    st.tuples(st.just("chars"), st.integers(0, 10 ** 6), st.text(max_size=8)),
    st.tuples(st.just("cut"), st.integers(0, 10 ** 6)))


def _mutate(text, edits):
    lines = text.split("\n")
    for e in edits:
        i = e[1] % max(len(lines), 1)
        if e[0] == "drop" and lines:
            del lines[i]
        elif e[0] == "dup" and lines:
            lines.insert(i, lines[i])
        elif e[0] == "swap" and len(lines) > 1:
            j = (i + 1) % len(lines)
            lines[i], lines[j] = lines[j], lines[i]
        elif e[0] == "insert":
            lines.insert(i, e[2])
        elif e[0] == "chars" and lines:
            s = lines[i]
            k = e[1] % (len(s) + 1)
            lines[i] = s[:k] + e[2] + s[k + len(e[2]):]
        elif e[0] == "cut":
            joined = "\n".join(lines)
            lines = joined[:e[1] % (len(joined) + 1)].split("\n")
    return "\n".join(lines)


@settings(max_examples=300, deadline=1000, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(LOGS))), st.lists(line_edit, max_size=6))
def test_mutated_logs_parse_or_fail_cleanly(which, edits):
    text = _mutate(LOGS[which], edits)
    try:
        log = parse_text(text, "m.log")
    except UserError as e:
        assert str(e).startswith("m.log") and "\n" not in str(e)
        return
    log.accuracy()                      # what the tables ask of every parsed log
    for w in log.warnings:
        assert isinstance(w, str)


@pytest.mark.parametrize("which", range(len(LOGS)))
def test_unmutated_logs_parse(which):
    acc = parse_text(LOGS[which], "ok.log").accuracy()
    assert (acc.top1, acc.top5) == ((0.8, 0.99) if which == 0 else (0.4, 0.8))


# ------------------------------------------------------- option validators

@FAST
@given(st.integers(-10 ** 6, 10 ** 6), st.one_of(st.none(), st.integers(0, 10 ** 6)),
       st.one_of(st.text(max_size=12), st.integers(-10 ** 12, 10 ** 12).map(str)))
def test_int_range_accepts_exactly_the_range(lo, span, text):
    hi = None if span is None else lo + span
    try:
        v = int_range(lo, hi)(text)
    except argparse.ArgumentTypeError as e:
        assert "\n" not in str(e)
        return
    assert isinstance(v, int) and v >= lo and (hi is None or v <= hi)
    assert v == int(text, 10)


TOOL_OPTIONS = [("parse_logs", ["--digits"], 0, 12),
                ("plot_logs", ["--dpi"], 10, 1200),
                ("prepare_cifar10", ["--seed"], 0, 2 ** 32 - 1),
                ("prepare_imagenet", ["--seed"], 0, 2 ** 32 - 1),
                ("prepare_imagenet", ["--jobs"], 1, 256),
                ("quant_pattern", ["--model", "m.caffemodel", "--batches"], 1, 100),
                ("pack_model", ["compare", "a.prototxt", "a.caffemodel", "a.sepnet",
                                "--batches"], 1, 100)]


@pytest.fixture(scope="module")
def parsers():
    from conftest import tool_parser
    return {name: tool_parser(name) for name, *_ in TOOL_OPTIONS}


@pytest.mark.parametrize("tool, argv, lo, hi", TOOL_OPTIONS)
def test_tool_numeric_options(parsers, tool, argv, lo, hi, capsys):
    p = parsers[tool]
    dest = argv[-1].lstrip("-").replace("-", "_")

    @settings(max_examples=60, deadline=500, database=None, suppress_health_check=[HealthCheck.too_slow,
              HealthCheck.function_scoped_fixture])
    @given(st.one_of(st.integers(-2 ** 40, 2 ** 40), st.integers(lo - 2, hi + 2),
                     st.sampled_from([lo, hi])).map(str) | st.text(max_size=6))
    def check(value):
        try:
            a = p.parse_args(argv + [value])
        except SystemExit as e:
            assert e.code == 2
            err = capsys.readouterr().err
            assert f"argument {argv[-1]}" in err and "Traceback" not in err
            assert not (value.strip().lstrip("-").isdigit() and value.isascii()
                        and lo <= int(value) <= hi), value
            return
        assert lo <= getattr(a, dest) <= hi
    check()
