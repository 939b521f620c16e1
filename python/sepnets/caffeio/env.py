"""Finding the Caffe this project built (tools and pycaffe), the CUDA
libraries of the nvidia wheels, and importing pycaffe without glog flooding
the terminal.

``python -m sepnets.caffeio.env nvidia-dir`` prints the wheels' folder,
``nvidia-lib-path`` the library folders of every nvidia wheel the CUDA build
uses (cuBLAS/cuRAND, cuDNN, NCCL), ``nvidia-include LIB`` an installed
cuDNN/NCCL wheel's headers, and ``wheel-headers`` extracts downloaded wheels'
headers (all or nothing), so that shell scripts ask this one place too."""
import os
import shutil

from .. import REPO_ROOT
from ..errors import UserError

_BUILD_DIRS = ("build", "build-cuda")


def _paths_file_entries():
    for d in _BUILD_DIRS:
        f = os.path.join(REPO_ROOT, d, "sepnets-paths.txt")
        if os.path.isfile(f):
            with open(f) as fh:
                yield dict(line.strip().split("=", 1) for line in fh if "=" in line)


def caffe_tool(name="caffe"):
    """Path of a Caffe command-line tool (caffe, convert_imageset, ...)."""
    env = os.environ.get("SEPNETS_CAFFE_TOOLS")
    if env and os.access(os.path.join(env, name), os.X_OK):
        return os.path.join(env, name)
    for entries in _paths_file_entries():
        p = os.path.join(entries.get("caffe_tools", ""), name)
        if os.access(p, os.X_OK):
            return p
    found = shutil.which(name)
    if found:
        return found
    raise UserError(name, "Caffe tool not found; run 'bash scripts/setup.sh' first")


def import_caffe(quiet=True):
    """Import pycaffe; with quiet, glog only prints warnings and errors."""
    # glog reads its flags when pycaffe initialises it, so the quiet level is
    # set for the import only and child processes (caffe train) log normally.
    saved = os.environ.get("GLOG_minloglevel")
    if quiet and saved is None:
        os.environ["GLOG_minloglevel"] = "2"
    try:
        import caffe  # noqa: F401
    except ImportError as e:
        raise UserError("caffe", f"pycaffe cannot be imported ({e}); run 'bash scripts/setup.sh' "
                        "and use the project's Python (.venv)") from e
    finally:
        if saved is None:
            os.environ.pop("GLOG_minloglevel", None)
    return caffe


def caffe_python_dir():
    """The folder of pycaffe's sources (``draw_net.py`` and the ``caffe``
    package), from the build's paths file, else from the imported package."""
    for entries in _paths_file_entries():
        d = entries.get("caffe_python")
        if d and os.path.isdir(d):
            return d
    caffe = import_caffe()
    return os.path.dirname(os.path.dirname(os.path.abspath(caffe.__file__)))


#: The CUDA major version of the nvidia-cublas / nvidia-curand wheels used.
NVIDIA_CUDA = "cu13"


def _nvidia_path(*parts):
    """The first existing ``<nvidia package folder>/<parts...>`` of the
    installed nvidia wheels (a namespace package: each wheel may add a
    folder), or None."""
    try:
        import nvidia
    except ImportError:
        return None
    for root in list(getattr(nvidia, "__path__", [])):
        p = os.path.join(root, *parts)
        if os.path.exists(p):
            return p
    return None


def nvidia_wheels_dir():
    """``site-packages/nvidia/cu13`` of the installed nvidia-cublas /
    nvidia-curand wheels (``include/``, ``lib/``), or None. The one place that
    says where they are: the CUDA build, the GPU bundle and the compile check
    use cuBLAS/cuRAND from there when the toolkit has none."""
    return _nvidia_path(NVIDIA_CUDA)


#: The nvidia wheels of cuDNN and NCCL (nvidia-cudnn-cu13, nvidia-nccl-cu13)
#: install under site-packages/nvidia/<name>/{include,lib}.
NVIDIA_LIBS = ("cudnn", "nccl")


def nvidia_lib_dirs():
    """The ``lib`` folders of the installed nvidia wheels a CUDA build loads
    (cuBLAS/cuRAND, cuDNN, NCCL), those that exist, in that order."""
    found = [_nvidia_path(NVIDIA_CUDA, "lib")] + [_nvidia_path(n, "lib") for n in NVIDIA_LIBS]
    return [d for d in found if d]


def nvidia_include(name):
    """``include`` of the installed nvidia-<name>-cu13 wheel (cuDNN, NCCL) when
    it has ``<name>.h``, else None."""
    header = _nvidia_path(name, "include", f"{name}.h")
    return os.path.dirname(header) if header else None


def extract_headers(wheels, marker, out, required):
    """Write every file of the `wheels` whose member path contains `marker`
    (e.g. ``/include/``, ``nvidia/cudnn/include/``) under `out`, at the path
    after the marker. All or nothing: the files go to ``out.part``, which
    becomes `out` only when each of `required` (paths under `out`) is there,
    so an interrupted extraction is never taken for a finished one."""
    import zipfile
    part = out + ".part"
    shutil.rmtree(part, ignore_errors=True)
    for whl in wheels:
        try:
            with zipfile.ZipFile(whl) as z:
                for m in z.namelist():
                    if marker in m and not m.endswith("/"):
                        dst = os.path.join(part, m.split(marker, 1)[1])
                        os.makedirs(os.path.dirname(dst), exist_ok=True)
                        with z.open(m) as src, open(dst, "wb") as f:
                            shutil.copyfileobj(src, f)
        except zipfile.BadZipFile as e:
            shutil.rmtree(part, ignore_errors=True)
            raise UserError(whl, f"not a readable wheel ({e})") from None
    missing = [r for r in required if not os.path.isfile(os.path.join(part, r))]
    if missing:
        shutil.rmtree(part, ignore_errors=True)
        raise UserError(wheels[0] if wheels else out, f"no {missing[0]} under '{marker}' in "
                        f"{', '.join(os.path.basename(w) for w in wheels) or 'no wheel'}")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(part, out)


_USAGE = """usage: python -m sepnets.caffeio.env nvidia-dir        # the nvidia wheels' folder (exit 1 if none)
       python -m sepnets.caffeio.env nvidia-lib-path   # their library folders, ':'-joined (exit 1 if none)
       python -m sepnets.caffeio.env nvidia-include LIB  # include/ of the installed LIB wheel (exit 1 if none)
       python -m sepnets.caffeio.env wheel-headers OUT MARKER REQUIRED[,REQUIRED...] WHEEL...
                                                       # their headers into OUT, all or nothing"""


def main(argv=None):
    import sys
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["nvidia-include"] and len(argv) == 2:
        d = nvidia_include(argv[1])
        if d is None:
            return 1
        print(d)
        return 0
    if argv[:1] == ["wheel-headers"] and len(argv) >= 5:
        out, marker, required = argv[1], argv[2], argv[3].split(",")
        try:
            extract_headers(argv[4:], marker, out, required)
        except (UserError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        return 0
    if argv not in (["nvidia-dir"], ["nvidia-lib-path"]):
        print(_USAGE, file=sys.stderr)
        return 2
    if argv == ["nvidia-lib-path"]:
        dirs = nvidia_lib_dirs()
        if not dirs:
            return 1
        print(":".join(dirs))
        return 0
    d = nvidia_wheels_dir()
    if d is None:
        return 1
    print(d)
    return 0


if __name__ == "__main__":
    import sys
    sys.exit(main())
