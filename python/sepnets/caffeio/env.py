"""Finding the Caffe this project built (tools and pycaffe), the CUDA
libraries of the nvidia wheels, and importing pycaffe without glog flooding
the terminal.

``python -m sepnets.caffeio.env nvidia-dir`` prints the wheels' folder, and
``nvidia-lib-path`` the library folders of every nvidia wheel the CUDA build
uses (cuBLAS/cuRAND, cuDNN, NCCL), so that shell scripts ask this one place
too."""
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


def nvidia_wheels_dir():
    """``site-packages/nvidia/cu13`` of the installed nvidia-cublas /
    nvidia-curand wheels (``include/``, ``lib/``), or None. The one place that
    says where they are: the CUDA build, the GPU bundle and the compile check
    use cuBLAS/cuRAND from there when the toolkit has none."""
    try:
        import nvidia
    except ImportError:
        return None
    for root in list(getattr(nvidia, "__path__", [])):
        d = os.path.join(root, NVIDIA_CUDA)
        if os.path.isdir(d):
            return d
    return None


#: The nvidia wheels of cuDNN and NCCL (nvidia-cudnn-cu13, nvidia-nccl-cu13)
#: install under site-packages/nvidia/<name>/{include,lib}.
NVIDIA_LIBS = ("cudnn", "nccl")


def nvidia_lib_dirs():
    """The ``lib`` folders of the installed nvidia wheels a CUDA build loads
    (cuBLAS/cuRAND, cuDNN, NCCL), those that exist, in that order."""
    dirs = []
    base = nvidia_wheels_dir()
    if base and os.path.isdir(os.path.join(base, "lib")):
        dirs.append(os.path.join(base, "lib"))
    try:
        import nvidia
    except ImportError:
        return dirs
    for name in NVIDIA_LIBS:
        for root in list(getattr(nvidia, "__path__", [])):
            d = os.path.join(root, name, "lib")
            if os.path.isdir(d):
                dirs.append(d)
                break
    return dirs


def main(argv=None):
    import sys
    argv = sys.argv[1:] if argv is None else argv
    if argv not in (["nvidia-dir"], ["nvidia-lib-path"]):
        print("usage: python -m sepnets.caffeio.env nvidia-dir        # the nvidia wheels' "
              "folder (exit 1 if none)\n"
              "       python -m sepnets.caffeio.env nvidia-lib-path   # their library "
              "folders, ':'-joined (exit 1 if none)", file=sys.stderr)
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
