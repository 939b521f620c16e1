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


def test_copy_tree_settled_takes_complete_log_lines(tmp_path):
    """A log caught mid-line is copied up to its last complete line (a cut
    "accuracy = 0.7" of 0.7485 would read as a result); other files whole; the
    run's README in the destination is left alone; unchanged files stay."""
    from sepnets.fileio import copy_tree_settled
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "exp").mkdir(parents=True)
    (src / "exp" / "1_full.log").write_bytes(b"I1 ok\nI2 Test net output #0: accuracy = 0.7")
    (src / "exp" / "state.json").write_text('{"a": 1}')        # no final newline, kept whole
    (src / "README.md").write_text("runner's\n")
    dst.mkdir()
    (dst / "README.md").write_text("the story\n")
    assert sorted(copy_tree_settled(str(src), str(dst), exclude={"README.md"})) == \
        ["exp/1_full.log", "exp/state.json"]
    assert (dst / "exp" / "1_full.log").read_bytes() == b"I1 ok\n"
    assert (dst / "exp" / "state.json").read_text() == '{"a": 1}'
    assert (dst / "README.md").read_text() == "the story\n"
    # the line completed: it arrives with the next copy; unchanged files are not rewritten
    with open(src / "exp" / "1_full.log", "ab") as f:
        f.write(b"485\n")
    assert copy_tree_settled(str(src), str(dst), exclude={"README.md"}) == ["exp/1_full.log"]
    assert (dst / "exp" / "1_full.log").read_bytes().endswith(b"accuracy = 0.7485\n")


def test_copy_tree_settled_while_a_writer_appends(tmp_path):
    """Copies taken while another thread appends lines in small pieces are
    each a prefix of the final log ending at a line's end."""
    import threading
    from sepnets.fileio import copy_tree_settled
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    log = src / "x.log"
    log.write_bytes(b"")
    lines = [f"I{i:05d} Iteration {i}, loss = 0.{i:04d}\n".encode() for i in range(3000)]

    def write():
        with open(log, "ab", buffering=0) as f:
            for ln in lines:
                for k in range(0, len(ln), 7):
                    f.write(ln[k:k + 7])

    t = threading.Thread(target=write)
    t.start()
    copies = []
    while t.is_alive():
        copy_tree_settled(str(src), str(dst))
        if (dst / "x.log").exists():
            copies.append((dst / "x.log").read_bytes())
    t.join()
    copy_tree_settled(str(src), str(dst))
    final = b"".join(lines)
    assert (dst / "x.log").read_bytes() == final
    assert copies
    for c in copies:
        assert final.startswith(c) and (c == b"" or c.endswith(b"\n"))
