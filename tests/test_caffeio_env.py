"""The CUDA headers of downloaded nvidia wheels (scripts/check_cuda.sh asks
sepnets.caffeio.env for them): extracted all or nothing, so that an
interrupted extraction is never taken for a finished one."""
import os
import subprocess
import sys
import zipfile

import pytest

from sepnets.caffeio.env import extract_headers
from sepnets.errors import UserError


def _wheel(path, members):
    with zipfile.ZipFile(path, "w") as z:
        for name, text in members.items():
            z.writestr(name, text)
    return str(path)


def test_headers_extracted_after_the_marker(tmp_path):
    a = _wheel(tmp_path / "a.whl", {"nvidia/cu13/include/cublas_v2.h": "cublas",
                                    "nvidia/cu13/include/sub/x.h": "x",
                                    "nvidia/cu13/lib/libcublas.so": "lib"})
    b = _wheel(tmp_path / "b.whl", {"nvidia/cu13/include/curand.h": "curand"})
    out = tmp_path / "hdrs" / "include"
    extract_headers([a, b], "/include/", str(out), ["cublas_v2.h", "curand.h"])
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == \
        ["cublas_v2.h", "curand.h", "sub/x.h"]
    assert (out / "sub" / "x.h").read_text() == "x"
    assert not (tmp_path / "hdrs" / "include.part").exists()


def test_missing_header_leaves_nothing_and_keeps_the_old(tmp_path):
    whl = _wheel(tmp_path / "cudnn.whl", {"nvidia/cudnn/include/cudnn_version.h": "v"})
    out = tmp_path / "cudnn" / "include"
    with pytest.raises(UserError, match="no cudnn.h under 'nvidia/cudnn/include/'"):
        extract_headers([whl], "nvidia/cudnn/include/", str(out), ["cudnn.h"])
    assert not out.exists() and not (tmp_path / "cudnn" / "include.part").exists()
    out.mkdir(parents=True)
    (out / "old.h").write_text("old")
    with pytest.raises(UserError):
        extract_headers([whl], "nvidia/cudnn/include/", str(out), ["cudnn.h"])
    assert (out / "old.h").read_text() == "old"
    # a leftover .part of an interrupted run is not taken up
    (tmp_path / "cudnn" / "include.part").mkdir()
    (tmp_path / "cudnn" / "include.part" / "cudnn.h").write_text("half")
    with pytest.raises(UserError):
        extract_headers([whl], "nvidia/cudnn/include/", str(out), ["cudnn.h"])


def test_command_line_one_line_and_exit_codes(tmp_path):
    whl = _wheel(tmp_path / "nccl.whl", {"nvidia/nccl/include/nccl.h": "n"})
    run = [sys.executable, "-m", "sepnets.caffeio.env"]
    out = tmp_path / "nccl" / "include"
    res = subprocess.run(run + ["wheel-headers", str(out), "nvidia/nccl/include/", "nccl.h", whl],
                         capture_output=True, text=True)
    assert res.returncode == 0 and (out / "nccl.h").read_text() == "n"
    bad = tmp_path / "broken.whl"
    bad.write_bytes(b"not a zip")
    res = subprocess.run(run + ["wheel-headers", str(out), "x/", "nccl.h", str(bad)],
                         capture_output=True, text=True)
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1
    assert (out / "nccl.h").read_text() == "n"
    res = subprocess.run(run + ["nonsense"], capture_output=True, text=True)
    assert res.returncode == 2 and "wheel-headers" in res.stderr


def test_installed_wheels_are_found_across_the_namespace(tmp_path):
    """The nvidia wheels install into one namespace package from several
    folders: cuBLAS/cuRAND's cu13/, cuDNN's and NCCL's own; each lookup
    finds its part wherever it is, and says nothing for a part not there."""
    a, b = tmp_path / "site-a" / "nvidia", tmp_path / "site-b" / "nvidia"
    for d in (a / "cu13" / "lib", a / "cu13" / "include", b / "cudnn" / "include",
              b / "cudnn" / "lib", b / "nccl" / "lib"):
        d.mkdir(parents=True)
    (b / "cudnn" / "include" / "cudnn.h").write_text("")
    code = ("from sepnets.caffeio import env; print(env.nvidia_wheels_dir()); "
            "print(env.nvidia_lib_dirs()); print(env.nvidia_include('cudnn')); "
            "print(env.nvidia_include('nccl'))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ,
                              "PYTHONPATH": f"{tmp_path / 'site-a'}:{tmp_path / 'site-b'}"})
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == str(a / "cu13")
    assert lines[1] == str([str(a / "cu13" / "lib"), str(b / "cudnn" / "lib"),
                            str(b / "nccl" / "lib")])
    assert lines[2:] == [str(b / "cudnn" / "include"), "None"]
