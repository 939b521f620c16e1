"""Caffe Datum records, mean BlobProtos and LMDBs, written from numpy.

Only the generated ``caffe_pb2`` module is needed, not the compiled pycaffe
extension: preparing data must not depend on the C++ build being current,
and the module is registered under its canonical name so that a later
``import caffe`` reuses it instead of registering caffe.proto twice.
"""
import io
import os

import numpy as np

from ..caffeio.proto import caffe_pb2  # noqa: F401 (the one caffe_pb2; re-exported)
from ..errors import UserError
from ..fileio import atomic_path, write_bytes_atomic

# Records per LMDB write transaction: large enough to amortise commits,
# small enough that an interrupted run does not hold much in memory.
_TXN_RECORDS = 1000


def array_to_datum(array, label):
    """A Datum for a CxHxW array: uint8 goes into `data`, anything else into
    `float_data` (Caffe's DataTransformer reads either)."""
    pb2 = caffe_pb2()
    c, h, w = array.shape
    if array.dtype == np.uint8:
        return pb2.Datum(channels=c, height=h, width=w, label=int(label),
                         data=np.ascontiguousarray(array).tobytes())
    return pb2.Datum(channels=c, height=h, width=w, label=int(label),
                     float_data=np.asarray(array, np.float32).ravel().tolist())


def datum_to_array(datum):
    """(CxHxW array, label) of a Datum; uint8 for byte data, else float32.
    Encoded (JPEG/PNG) Datums are decoded with Pillow into BGR, as Caffe does."""
    c, h, w = datum.channels, datum.height, datum.width
    if datum.encoded:
        from PIL import Image
        rgb = np.asarray(Image.open(io.BytesIO(datum.data)).convert("RGB"))
        return rgb[:, :, ::-1].transpose(2, 0, 1).copy(), datum.label
    if datum.data:
        return np.frombuffer(datum.data, np.uint8).reshape(c, h, w), datum.label
    return np.asarray(datum.float_data, np.float32).reshape(c, h, w), datum.label


def write_lmdb(path, records, count, progress=None, what=None):
    """Write `count` (array, label) records to a new LMDB at `path`.

    Keys are zero-padded indices, so Caffe's Data layer (which reads in key
    order) sees the records in the order given. The LMDB is built beside
    `path` and moved into place only when complete.
    """
    import lmdb
    what = what or os.path.basename(path)
    step = max(1, count // 5)
    with atomic_path(path, is_dir=True) as tmp:
        env = None
        txn = None
        written = 0
        try:
            for i, (array, label) in enumerate(records):
                value = array_to_datum(array, label).SerializeToString()
                if env is None:
                    # Sparse on Linux: the map size only reserves address space.
                    page = 4096
                    per = (len(value) + 64 + page - 1) // page * page + page
                    env = lmdb.open(tmp, map_size=2 * per * max(count, 1) + (64 << 20),
                                    subdir=True, meminit=False, map_async=True)
                    txn = env.begin(write=True)
                txn.put(b"%08d" % i, value)
                written += 1
                if written % _TXN_RECORDS == 0:
                    txn.commit()
                    txn = env.begin(write=True)
                if progress and (written % step == 0 or written == count):
                    progress(f"  {what}: {written}/{count}")
            if env is None:
                raise UserError(path, "no records to write")
            txn.commit()
            txn = None
            env.sync(True)
        finally:
            if txn is not None:
                txn.abort()
            if env is not None:
                env.close()
        if written != count:
            raise UserError(path, f"expected {count} records, got {written}")
    return path


def lmdb_count(path):
    """Number of records in an LMDB."""
    import lmdb
    if not os.path.isdir(path):
        raise UserError(path, "LMDB not found")
    try:
        with lmdb.open(path, readonly=True, lock=False, subdir=True) as env:
            return env.stat()["entries"]
    except lmdb.Error as e:
        raise UserError(path, f"cannot read LMDB ({e})") from None


def read_lmdb(path, limit=None):
    """Yield (key, Datum) in key order; `limit` stops early."""
    import lmdb
    if not os.path.isdir(path):
        raise UserError(path, "LMDB not found")
    pb2 = caffe_pb2()
    env = lmdb.open(path, readonly=True, lock=False, subdir=True)
    try:
        with env.begin() as txn:
            for n, (key, value) in enumerate(txn.cursor()):
                if limit is not None and n >= limit:
                    break
                datum = pb2.Datum()
                datum.ParseFromString(value)
                yield key.decode(), datum
    finally:
        env.close()


def write_mean_binaryproto(path, mean):
    """Write a CxHxW mean as the 1xCxHxW BlobProto Caffe's mean_file reads."""
    pb2 = caffe_pb2()
    c, h, w = mean.shape
    blob = pb2.BlobProto(num=1, channels=c, height=h, width=w,
                         data=np.asarray(mean, np.float32).ravel().tolist())
    write_bytes_atomic(path, blob.SerializeToString())


def read_mean_binaryproto(path):
    """The CxHxW float32 array of a mean .binaryproto."""
    pb2 = caffe_pb2()
    blob = pb2.BlobProto()
    try:
        with open(path, "rb") as f:
            blob.ParseFromString(f.read())
    except OSError as e:
        raise UserError(path, f"cannot read ({e.strerror})") from e
    except Exception as e:
        raise UserError(path, f"not a BlobProto ({e})") from e
    if blob.HasField("shape"):
        dims = list(blob.shape.dim)
    else:
        dims = [blob.num, blob.channels, blob.height, blob.width]
    data = np.asarray(blob.data, np.float32)
    if data.size != int(np.prod(dims)) or data.size == 0:
        raise UserError(path, f"BlobProto shape {dims} does not match its {data.size} values")
    return data.reshape(dims[-3:])


def lmdb_subset(src, dst, n):
    """Copy n records spread evenly over the LMDB `src` (every k-th, in key
    order) into a new LMDB `dst`, records unchanged.

    Why: a test of fewer batches than the test set reads its first records,
    and a test set stored class by class would then measure one class."""
    import lmdb
    total = lmdb_count(src)
    wanted = {(i * total) // n for i in range(n)}
    with lmdb.open(src, readonly=True, lock=False) as env, env.begin() as txn:
        picked = [(k, v) for i, (k, v) in enumerate(txn.cursor()) if i in wanted]
    size = sum(len(k) + len(v) for k, v in picked)
    with atomic_path(dst, is_dir=True) as tmp:
        with lmdb.open(tmp, map_size=2 * size + (1 << 24)) as out:
            with out.begin(write=True) as txn:
                for k, v in picked:
                    txn.put(k, v)
    return len(picked)
