"""sepnets.cli.int_range and the tools' bounded numeric options: a value out
of range is argparse's one line with exit 2, never a traceback further on
(--digits -1 in a format spec, --dpi 0 in matplotlib, --seed -1 in numpy) or
memory without bound (--batches 1000000000 caches every batch)."""
import argparse
import os
import subprocess
import sys

import pytest

from sepnets.cli import int_range

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_int_range():
    t = int_range(1, 100)
    assert t("1") == 1 and t("100") == 100
    for bad in ("0", "101", "-3", "1e9", "x", "", "2.5"):
        with pytest.raises(argparse.ArgumentTypeError):
            t(bad)
    assert int_range(0)("123456789012345678901234567890") == 123456789012345678901234567890
    with pytest.raises(argparse.ArgumentTypeError, match="at least 0"):
        int_range(0)("-1")


@pytest.mark.parametrize("argv, option", [
    (["parse_logs.py", "--digits", "-1"], "--digits"),
    (["parse_logs.py", "--digits", "100000"], "--digits"),
    (["plot_logs.py", "--dpi", "0"], "--dpi"),
    (["plot_logs.py", "--dpi", "1000000"], "--dpi"),
    (["prepare_cifar10.py", "--seed", "-1"], "--seed"),
    (["prepare_cifar10.py", "--seed", str(2 ** 32)], "--seed"),
    (["prepare_imagenet.py", "--seed", "-1"], "--seed"),
    (["prepare_imagenet.py", "--jobs", "0"], "--jobs"),
    (["prepare_imagenet.py", "--jobs", "-3"], "--jobs"),
    (["quant_pattern.py", "--model", "m.caffemodel", "--sweep", "0.02:0.09:0.01",
      "--batches", "1000000000"], "--batches"),
    (["quant_pattern.py", "--model", "m.caffemodel", "--batches", "0"], "--batches"),
    (["pack_model.py", "compare", "a.prototxt", "a.caffemodel", "a.sepnet",
      "--batches", "1000000000"], "--batches"),
])
def test_out_of_range_options_are_one_line(argv, option):
    res = subprocess.run([sys.executable, os.path.join(REPO, "tools", argv[0]), *argv[1:]],
                         capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=os.path.join(REPO, "python")))
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert f"error: argument {option}" in last and "out of range" in last, res.stderr
