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
    path = check_output_path(path, is_dir)
    parent = os.path.dirname(path)
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


def check_output_path(path, is_dir=False):
    """Make the parent folder of output `path` and return the absolute path;
    a UserError (one line, not an OSError traceback) when `path` cannot be
    written: it is an existing folder where a file is wanted (or the reverse),
    a file stands where a parent folder should be, or the folder cannot be
    made."""
    shown = path
    path = os.path.abspath(path)
    if not os.path.basename(path):
        raise UserError(shown, "output path names no file")
    if os.path.isdir(path) and not is_dir:
        raise UserError(shown, "is a folder; give a file name for the output")
    if os.path.exists(path) and not os.path.isdir(path) and is_dir:
        raise UserError(shown, "is a file; the output is a folder")
    _make_folder(shown, os.path.dirname(path))
    return path


def check_output_dir(path, create=True):
    """An output folder (--runs-dir, --logs-dir, --out of a folder): made if
    missing (unless not `create`: then only checked, e.g. before a long read);
    one line if it is a file or lies under one."""
    shown = path
    path = os.path.abspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(shown, "is a file; the output is a folder")
    _make_folder(shown, path, create)
    return path


def _make_folder(shown, folder, create=True):
    up = folder
    while not os.path.exists(up) and os.path.dirname(up) != up:
        up = os.path.dirname(up)
    if not os.path.isdir(up):
        raise UserError(shown, f"cannot create the output: {up} is a file, not a folder")
    if not create:
        return
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise UserError(shown, f"cannot create the folder {folder} ({e.strerror})") from e
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(shown, f"folder {folder} is not writable")


def _write_temp(path, data):
    """Write `data` to a new temporary file beside `path`; return its name."""
    parent, base = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
    except BaseException:
        os.remove(tmp)
        raise
    return tmp


def write_files_together(items):
    """Write several files that only make sense as a set (a caffemodel and its
    prototxt): [(path, bytes)], in the order they are moved into place.

    Every file is first written in full to a temporary name beside its
    target; only then are they renamed over the targets, in the given order
    (put the file readers look at first, e.g. the prototxt, last). A failure
    while writing changes nothing; a failure during the renames puts back the
    files already replaced. Left is only the instant between two renames,
    which no write of data spans.
    """
    items = [(check_output_path(p), d) for p, d in items]
    tmps, backups, done = [], {}, []
    try:
        for path, data in items:
            tmps.append(_write_temp(path, data))
        for path, _ in items:
            if os.path.isfile(path):
                bak = path + f".{os.getpid()}.bak"
                try:
                    os.link(path, bak)
                    backups[path] = bak
                except OSError:
                    pass            # no hard links here: no roll-back, the renames still are

        for (path, _), tmp in zip(items, tmps):
            os.replace(tmp, path)
            done.append(path)
    except BaseException:
        for path in done:
            if path in backups:
                os.replace(backups.pop(path), path)
            else:
                os.remove(path)
        for tmp in tmps:
            if os.path.exists(tmp):
                os.remove(tmp)
        raise
    finally:
        for bak in backups.values():
            if os.path.exists(bak):
                os.remove(bak)


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


def copy_tree_settled(src, dst, exclude=()):
    """Copy the folder `src` over `dst` while a long run is still writing it.

    A log that Caffe is appending to can be read mid-line: a copy cut there
    ends in a half-written number ("accuracy = 0.7" of 0.7485), which the log
    parser would read as a result. So each ``*.log`` is copied up to its last
    complete line (the rest arrives with the next copy); every other file is
    written by replacing it whole, so a plain read gets a complete version.
    Each file lands atomically; files whose content is unchanged are not
    rewritten; names in `exclude` (a run's README, written by hand) are left
    alone. Returns the relative paths written.
    """
    written = []
    for folder, dirs, files in os.walk(src):
        dirs.sort()
        rel_dir = os.path.relpath(folder, src)
        for name in sorted(files):
            if name in exclude or name.startswith("."):
                continue
            rel = os.path.normpath(os.path.join(rel_dir, name))
            with open(os.path.join(folder, name), "rb") as f:
                data = f.read()
            if name.endswith(".log"):
                data = data[:data.rfind(b"\n") + 1]
            out = os.path.join(dst, rel)
            try:
                with open(out, "rb") as f:
                    if f.read() == data:
                        continue
            except FileNotFoundError:
                pass
            os.makedirs(os.path.dirname(out), exist_ok=True)
            write_bytes_atomic(out, data)
            written.append(rel)
    return written
