"""The CUDA headers of downloaded nvidia wheels (scripts/check_cuda.sh asks
sepnets.caffeio.env for them): extracted all or nothing, so that an
interrupted extraction is never taken for a finished one."""
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from sepnets import REPO_ROOT
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


def _split_wheels(tmp_path):
    """Two site folders sharing the nvidia namespace: cu13/ in one, cuDNN
    (with its header) and NCCL (without) in the other; (a, b, PYTHONPATH)."""
    a, b = tmp_path / "site-a" / "nvidia", tmp_path / "site-b" / "nvidia"
    for d in (a / "cu13" / "lib", a / "cu13" / "include", b / "cudnn" / "include",
              b / "cudnn" / "lib", b / "nccl" / "lib"):
        d.mkdir(parents=True)
    (b / "cudnn" / "include" / "cudnn.h").write_text("")
    return a, b, f"{tmp_path / 'site-a'}:{tmp_path / 'site-b'}"


def test_installed_wheels_are_found_across_the_namespace(tmp_path):
    """The nvidia wheels install into one namespace package from several
    folders: cuBLAS/cuRAND's cu13/, cuDNN's and NCCL's own; each lookup
    finds its part wherever it is, and says nothing for a part not there."""
    a, b, path = _split_wheels(tmp_path)
    code = ("from sepnets.caffeio import env; print(env.nvidia_wheels_dir()); "
            "print(env.nvidia_lib_dirs()); print(env.nvidia_include('cudnn')); "
            "print(env.nvidia_include('nccl'))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": path})
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == str(a / "cu13")
    assert lines[1] == str([str(a / "cu13" / "lib"), str(b / "cudnn" / "lib"),
                            str(b / "nccl" / "lib")])
    assert lines[2:] == [str(b / "cudnn" / "include"), "None"]


@pytest.mark.skipif(shutil.which("cmake") is None, reason="no cmake")
def test_cmake_asks_the_same_lookups(tmp_path):
    """The CMake files (CUDA build, compile check) find the wheels through
    cmake/SepnetsEnv.cmake, which runs these lookups: the same answers, and
    "" where the Python side finds nothing."""
    a, b, path = _split_wheels(tmp_path)
    script = tmp_path / "ask.cmake"
    script.write_text(f"include({REPO_ROOT}/cmake/SepnetsEnv.cmake)\n"
                      "sepnets_env(d nvidia-dir)\nmessage(\"dir=${d}\")\n"
                      "foreach(l cudnn nccl)\n  sepnets_env(i nvidia-include ${l})\n"
                      "  message(\"${l}=${i}\")\nendforeach()\n")
    res = subprocess.run(["cmake", f"-DPROJECT_SOURCE_DIR={REPO_ROOT}",
                          f"-DPYTHON_EXECUTABLE={sys.executable}", "-P", str(script)],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": path})
    assert res.returncode == 0, res.stderr
    assert res.stderr.splitlines() == [f"dir={a / 'cu13'}", f"cudnn={b / 'cudnn' / 'include'}",
                                       "nccl="]


def _cuda_wheel_lookup(tmp_path, cudnn_header=True):
    """Run cmake/CudaWheels.cmake (the CUDA build's search for cuBLAS/cuRAND,
    cuDNN and NCCL) in CMake's script mode against a toolkit with nvcc only
    and made-up wheels; include_directories (not scriptable) is stubbed."""
    tk, site = tmp_path / "toolkit", tmp_path / "site" / "nvidia"
    files = ["cu13/include/cublas_v2.h", "cu13/include/curand.h", "cu13/lib/libcublas.so.13",
             "cu13/lib/libcublasLt.so.13", "cu13/lib/libcurand.so.10", "cudnn/lib/libcudnn.so.9",
             "nccl/include/nccl.h", "nccl/lib/libnccl.so.2"]
    files += ["cudnn/include/cudnn.h"] if cudnn_header else ["cudnn/include/cudnn_version.h"]
    for f in files:
        (site / f).parent.mkdir(parents=True, exist_ok=True)
        (site / f).write_text("")
    (tk / "bin").mkdir(parents=True)
    (tk / "bin" / "nvcc").write_text("")
    script = tmp_path / "find.cmake"
    script.write_text(f"function(include_directories)\nendfunction()\n"
                      f"set(CMAKE_BINARY_DIR {tmp_path / 'build'})\n"
                      f"include({REPO_ROOT}/cmake/CudaWheels.cmake)\n"
                      "message(\"cuda=${SEPNETS_CUDA_EXTRA_INCLUDE}\")\n"
                      "sepnets_find_cudnn()\nmessage(\"cudnn=${CUDNN_INCLUDE};${CUDNN_LIBRARY}\")\n"
                      "sepnets_find_nccl()\n"
                      "message(\"nccl=${NCCL_INCLUDE_DIR};${NCCL_LIBRARIES}\")\n")
    res = subprocess.run(["cmake", f"-DPROJECT_SOURCE_DIR={REPO_ROOT}",
                          f"-DPYTHON_EXECUTABLE={sys.executable}", f"-DSEPNETS_CUDA_ROOT={tk}",
                          "-P", str(script)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(tmp_path / "site")})
    return site, res


@pytest.mark.skipif(shutil.which("cmake") is None, reason="no cmake")
def test_cuda_build_takes_the_wheels_it_finds(tmp_path):
    site, res = _cuda_wheel_lookup(tmp_path)
    assert res.returncode == 0, res.stderr
    said = [ln for ln in res.stderr.splitlines() if "=" in ln and not ln.startswith("--")]
    assert said == [f"cuda={site / 'cu13' / 'include'}",
                    f"cudnn={site / 'cudnn' / 'include'};{site / 'cudnn' / 'lib' / 'libcudnn.so.9'}",
                    f"nccl={site / 'nccl' / 'include'};{site / 'nccl' / 'lib' / 'libnccl.so.2'}"]
    link = tmp_path / "build" / "cuda-wheel-libs" / "libcublas.so"
    assert os.readlink(link) == str(site / "cu13" / "lib" / "libcublas.so.13")


@pytest.mark.skipif(shutil.which("cmake") is None, reason="no cmake")
def test_cuda_build_without_the_cudnn_header_says_what_to_install(tmp_path):
    _, res = _cuda_wheel_lookup(tmp_path, cudnn_header=False)
    assert res.returncode != 0
    assert "cuDNN not found" in res.stderr and "pip install nvidia-cudnn-cu13" in res.stderr
