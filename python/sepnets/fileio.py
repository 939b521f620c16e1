"""Atomic output: results appear complete or not at all, and inputs are never
overwritten, so an interrupted run loses nothing."""
import contextlib
import os
import shutil
import tempfile

from .errors import UserError


@contextlib.contextmanager
def atomic_path(path, is_dir=False):
    """Yield a temporary path beside `path`; move it into place on success.

    For directories (e.g. an LMDB), an existing `path` is replaced only after
    the new one is complete.
    """
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    base = os.path.basename(path)
    if is_dir:
        tmp = tempfile.mkdtemp(prefix=f".{base}.", suffix=".tmp", dir=parent)
    else:
        fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=parent)
        os.close(fd)
        # mkstemp makes the file private (0600); give it the usual mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        if is_dir:
            old = None
            if os.path.exists(path):
                old = tempfile.mkdtemp(prefix=f".{base}.", suffix=".old", dir=parent)
                os.rmdir(old)
                os.rename(path, old)
            os.rename(tmp, path)
            if old:
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_text_atomic(path, text):
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


def write_bytes_atomic(path, data):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def refuse_overwrite(output, *inputs):
    """Raise if `output` is one of the input files (never overwrite an input)."""
    out = os.path.realpath(output)
    for p in inputs:
        if p and os.path.realpath(p) == out:
            raise UserError(output, "output would overwrite an input file; choose another path")


def require_file(path, what="file"):
    if not os.path.isfile(path):
        raise UserError(path, f"{what} not found")
    return path
