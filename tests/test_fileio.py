"""sepnets.fileio, the one place the tools' outputs are written: an output
path that is a folder, or lies under a file, is one UserError line (it used
to be an OSError traceback in about nine tools), and files written as a set
land together."""
import os
import subprocess
import sys

import pytest

from sepnets import fileio
from sepnets.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def spots(tmp_path):
    (tmp_path / "afile").write_text("keep me\n")
    (tmp_path / "adir").mkdir()
    return tmp_path


@pytest.mark.parametrize("write", [fileio.write_text_atomic,
                                   lambda p, t: fileio.write_bytes_atomic(p, t.encode())])
def test_output_file_that_is_a_folder_or_under_a_file(spots, write):
    with pytest.raises(UserError, match="is a folder"):
        write(str(spots / "adir"), "x")
    with pytest.raises(UserError, match=r"afile is a file, not a folder"):
        write(str(spots / "afile" / "deeper" / "out.txt"), "x")
    assert (spots / "afile").read_text() == "keep me\n"
    assert os.listdir(spots / "adir") == []
    write(str(spots / "new" / "sub" / "out.txt"), "x")       # missing folders are made
    assert (spots / "new" / "sub" / "out.txt").read_text() == "x"


def test_atomic_folder_output(spots):
    with pytest.raises(UserError, match="is a file; the output is a folder"):
        with fileio.atomic_path(str(spots / "afile"), is_dir=True):
            pass
    with pytest.raises(UserError, match="afile is a file"):
        with fileio.atomic_path(str(spots / "afile" / "lmdb"), is_dir=True):
            pass
    assert (spots / "afile").read_text() == "keep me\n"


def test_check_output_dir(spots):
    with pytest.raises(UserError, match="is a file; the output is a folder"):
        fileio.check_output_dir(str(spots / "afile"))
    with pytest.raises(UserError) as e:
        fileio.check_output_dir(str(spots / "afile" / "runs"))
    assert str(e.value).startswith(str(spots / "afile" / "runs") + ": ")
    assert fileio.check_output_dir(str(spots / "a" / "b")) == str(spots / "a" / "b")
    assert (spots / "a" / "b").is_dir()


def test_files_together_all_or_nothing(tmp_path, monkeypatch):
    a, b = str(tmp_path / "m.caffemodel"), str(tmp_path / "m.prototxt")
    fileio.write_files_together([(a, b"old model"), (b, b"old net")])
    real = os.replace

    def fail_second(src, dst):
        if dst == b:
            raise OSError(5, "Input/output error")
        return real(src, dst)
    monkeypatch.setattr(fileio.os, "replace", fail_second)
    with pytest.raises(OSError):
        fileio.write_files_together([(a, b"new model"), (b, b"new net")])
    monkeypatch.undo()
    assert open(a, "rb").read() == b"old model" and open(b, "rb").read() == b"old net"
    assert sorted(os.listdir(tmp_path)) == ["m.caffemodel", "m.prototxt"]
    fileio.write_files_together([(a, b"new model"), (b, b"new net")])
    assert open(a, "rb").read() == b"new model" and open(b, "rb").read() == b"new net"
    assert sorted(os.listdir(tmp_path)) == ["m.caffemodel", "m.prototxt"]


def _tool(*args):
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "python"))
    return subprocess.run([sys.executable, os.path.join(REPO, "tools", args[0]), *args[1:]],
                          capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize("argv, needle", [
    (["draw_nets.py", "--out", "{afile}"], "is a file; the output is a folder"),
    (["draw_nets.py", "--out", "{afile}/figs"], "is a file, not a folder"),
    (["prepare_cifar10.py", "--source", "{cifar}", "--out", "{afile}"],
     "is a file; the output is a folder"),
    (["prepare_cifar10.py", "--source", "{cifar}", "--out", "{afile}/c10"],
     "is a file, not a folder"),
    (["run_experiment.py", "cifar10-resnet20", "--quick", "--runs-dir", "{afile}/runs",
      "--logs-dir", "{tmp}/logs"], "is a file, not a folder"),
    (["run_experiment.py", "cifar10-resnet20", "--quick", "--runs-dir", "{tmp}/runs",
      "--logs-dir", "{afile}"], "is a file, not a folder"),
])
def test_tools_report_unusable_output_paths_in_one_line(spots, shared_dir, argv, needle):
    fill = {"afile": str(spots / "afile"), "tmp": str(spots),
            "cifar": os.path.join(shared_dir, "data", "cifar10-jpeg.tar.gz")}
    res = _tool(*[a.format(**fill) for a in argv])
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    last = res.stderr.strip().splitlines()
    assert len(last) == 1 and needle in last[0] and str(spots / "afile") in last[0], res.stderr
    assert (spots / "afile").read_text() == "keep me\n"
