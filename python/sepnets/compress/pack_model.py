"""Packed model files (.sepnet): the compression the size summary promises,
made real on disk (``tools/pack_model.py``). A caffemodel stores every weight as fp32 in protobuf; this
format stores each blob as :mod:`sepnets.compress.sizes` prices it, so the file
size equals the summary's size plus a few bytes of framing per layer.

Format, version 1 (all integers little-endian)::

    header (32 bytes)
      magic          8 bytes  b"\\x89SEPNET\\n"  (non-ASCII first byte and a
                              newline catch text-mode transfers and foreign files)
      version        u16      1
      flags          u16      bit 0: BQ (1x1 conv / FC weights in 8 bits)
      layer_count    u32
      payload_size   u64      bytes after the header
      payload_crc32  u32      zlib.crc32 of the payload
      header_crc32   u32      zlib.crc32 of the 28 bytes before it
    payload: layer_count records, in the prototxt's layer order
      name           varint length + UTF-8 bytes (the Caffe layer name)
      blob_count     u8
      per blob:
        encoding     u8       0 fp32 | 1 sign | 2 sign+scale | 3 uint8
        ndim         u8, then ndim varint dims (Caffe's blob shape)
        data         fp32:       count * f32
                     sign:       packbits(bit) (ceil(count/8) bytes, MSB first);
                                 W[c] = +alpha[c] where bit else -alpha[c],
                                 alpha = the layer's last blob (its alpha blob)
                     sign+scale: packbits(bit), then dims[0] * f32 alpha
                     uint8:      f32 scale, u8 zero point, count * u8 q;
                                 W = (q - zero_point) * scale

varint = unsigned LEB128. Unpacking needs the prototxt (for the layer
definitions) and checks every record against it.

What comes back: fp32 blobs bit for bit; binarized weights as +/-alpha, which
is bit for bit the model for quant_pattern's output and the release's baked
+/-offset Convolutions. A BinaryPatternConvolution holding latent real weights
gets alpha_c * sign(W_c) instead (alpha from its alpha blob, else mean |W_c|):
the same forward output for MEAN/FIXED and OFFSET, the same up to float
rounding for STE; an unbound (zero) alpha is stored bound to mean |W_c|. BQ
uint8 blobs change by at most scale/2 per weight.
"""
import math
import struct
import zlib

import numpy as np

from ..caffeio.blobs import (BPC, _wants_alpha, blob_array, check_layer_blobs, has_params,
                             model_arrays, model_blobs, set_blob)
from ..caffeio.proto import caffe_pb2, read_caffemodel, read_prototxt, unique_layers
from ..caffeio.pycaffe import open_net, set_net_params
from ..errors import UserError
from ..fileio import refuse_overwrite, require_file, write_bytes_atomic
from .sizes import MB, layer_size, summarize

MAGIC = b"\x89SEPNET\n"
MAX_AXES = 32                      # Caffe's kMaxBlobAxes
MAX_COUNT = 2 ** 31 - 1            # Caffe's blob count is an int (INT_MAX)
VERSION = 1
FLAG_BQ = 1
HEADER = struct.Struct("<8sHHIQII")
ENCODINGS = {"fp32": 0, "sign": 1, "sign+scale": 2, "uint8": 3}
_NAMES = {v: k for k, v in ENCODINGS.items()}


class _Corrupt(Exception):
    pass


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


class _Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, n):
        if n < 0 or self.pos + n > len(self.data):
            raise _Corrupt("record runs past the end of the payload")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def u8(self):
        return self.take(1)[0]

    def varint(self):
        n, shift = 0, 0
        while True:
            b = self.u8()
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                return n
            shift += 7
            if shift > 63:
                raise _Corrupt("varint too long")


# ------------------------------------------------------------ quantization

def quantize_uint8(w):
    """Per-tensor affine uint8 (range widened to hold 0): (q, scale, zero_point)."""
    w = np.asarray(w, dtype=np.float32)
    lo, hi = min(float(w.min()), 0.0), max(float(w.max()), 0.0)
    scale = np.float32((hi - lo) / 255.0) if hi > lo else np.float32(1.0)
    zp = int(np.clip(np.round(-lo / float(scale)), 0, 255))
    q = np.clip(np.round(w / scale) + zp, 0, 255).astype(np.uint8)
    return q, scale, zp


def dequantize_uint8(q, scale, zp):
    return ((q.astype(np.float32) - np.float32(zp)) * np.float32(scale)).astype(np.float32)


# --------------------------------------------------------------- packing

def _mean_alpha(w):
    flat = np.asarray(w, dtype=np.float64).reshape(w.shape[0], -1)
    return np.abs(flat).mean(axis=1).astype(np.float32)


def _layer_arrays(layer, arrays):
    """The arrays to store for a layer: a MEAN/FIXED pattern layer always gets
    a bound alpha blob (0 = unbound is replaced by mean |W_c|)."""
    if layer.type != BPC or not _wants_alpha(layer):
        return arrays
    n_stock = 2 if layer.convolution_param.bias_term else 1
    w = arrays[0]
    alpha = arrays[n_stock] if len(arrays) > n_stock else np.zeros(w.shape[0], np.float32)
    alpha = np.where(alpha != 0, alpha, _mean_alpha(w)).astype(np.float32)
    return list(arrays[:n_stock]) + [alpha]


def _encode(blob, arr, layer_type):
    enc = blob.encoding
    head = bytes([ENCODINGS[enc], arr.ndim]) + b"".join(_varint(d) for d in arr.shape)
    if enc == "fp32":
        return head + arr.astype("<f4").tobytes()
    if enc in ("sign", "sign+scale"):
        if layer_type == BPC:
            bits = arr >= 0  # the layer's rule: sign(0) = +1
            alpha = _mean_alpha(arr)
        else:  # a stock conv holding +/-a: keep every bit, -0.0 included
            bits = ~np.signbit(arr)
            alpha = np.abs(arr.reshape(arr.shape[0], -1)[:, 0]).astype(np.float32)
        out = head + np.packbits(bits.ravel()).tobytes()
        return out + (alpha.astype("<f4").tobytes() if enc == "sign+scale" else b"")
    q, scale, zp = quantize_uint8(arr)
    return head + struct.pack("<fB", scale, zp) + q.tobytes()


def layer_records(net, model, net_path, model_path, bq=False):
    """[(LayerSize, arrays)] for every parameter layer, in the net's order."""
    defs = {layer.name: layer for layer in unique_layers(net)}
    out = []
    for name, blobs in model_blobs(net, model, net_path, model_path).items():
        layer = defs[name]
        arrays = _layer_arrays(layer, [blob_array(b, layer.type, i) for i, b in enumerate(blobs)])
        size = layer_size(layer, [a.shape for a in arrays],
                          arrays[0] if layer.type == "Convolution" else None, bq)
        out.append((size, arrays))
    return out


def pack(net, model, net_path, model_path, bq=False):
    """The packed bytes of a model (prototxt-checked)."""
    payload = bytearray()
    records = layer_records(net, model, net_path, model_path, bq)
    for size, arrays in records:
        name = size.name.encode("utf-8")
        payload += _varint(len(name)) + name + bytes([len(arrays)])
        for blob, arr in zip(size.blobs, arrays):
            payload += _encode(blob, arr, size.type)
    head = struct.pack("<8sHHIQI", MAGIC, VERSION, FLAG_BQ if bq else 0, len(records),
                       len(payload), zlib.crc32(payload))
    return head + struct.pack("<I", zlib.crc32(head)) + bytes(payload)


# ------------------------------------------------------------- unpacking

def read_packed(data, path):
    """(flags, [(name, [(encoding, shape, array)])]) of packed bytes, or one
    clear error for foreign, truncated, corrupt or newer files."""
    if data[:len(MAGIC)] != MAGIC:
        if len(data) < len(MAGIC) and MAGIC.startswith(data) and data:
            raise UserError(path, f"truncated: {len(data)} bytes, shorter than the header")
        raise UserError(path, "not a SEP-Nets packed model (no SEPNET magic; "
                              "a .caffemodel or another file?)")
    if len(data) >= len(MAGIC) + 2:
        version = struct.unpack_from("<H", data, len(MAGIC))[0]
        if version != VERSION:  # a later format may frame its header differently
            raise UserError(path, f"format version {version}; this tool reads version "
                                  f"{VERSION}")
    if len(data) < HEADER.size:
        raise UserError(path, f"truncated: {len(data)} bytes, shorter than the "
                              f"{HEADER.size}-byte header")
    _, version, flags, count, size, crc, hcrc = HEADER.unpack_from(data)
    if zlib.crc32(data[:HEADER.size - 4]) != hcrc:
        raise UserError(path, "corrupt: header checksum mismatch")
    total = HEADER.size + size
    if len(data) < total:
        raise UserError(path, f"truncated: {len(data)} of {total} bytes")
    if len(data) > total:
        raise UserError(path, f"corrupt: {len(data) - total} bytes after the end of the "
                              "packed model")
    payload = data[HEADER.size:]
    if zlib.crc32(payload) != crc:
        raise UserError(path, "corrupt: payload checksum mismatch")
    try:
        return flags, _records(payload, count)
    except _Corrupt as e:
        raise UserError(path, f"corrupt: {e}") from None


def framing_bytes(data, path):
    """Bytes of a packed file that are not weights: the header, each record's
    name and counts, each blob's encoding, dims (varints) and BQ scale/zero
    point, and up to 7 padding bits per packbits pattern. The packed size is
    the computed size (model_summary) plus at most this, which is why a net
    of a few KB is a few percent above it and a large one is not (see
    docs/compression.md)."""
    _, layers = read_packed(data, path)
    n = HEADER.size
    for name, blobs in layers:
        raw = name.encode("utf-8")
        n += len(_varint(len(raw))) + len(raw) + 1
        for enc, shape, _ in blobs:
            n += 2 + sum(len(_varint(d)) for d in shape) + (5 if enc == "uint8" else 0)
            n += 1 if enc in ("sign", "sign+scale") else 0
    return n


def _records(payload, count):
    r = _Reader(payload)
    out = []
    for _ in range(count):
        try:
            name = r.take(r.varint()).decode("utf-8")
        except UnicodeDecodeError:
            raise _Corrupt("layer name is not UTF-8") from None
        blobs = []
        for _ in range(r.u8()):
            enc = _NAMES.get(r.u8())
            if enc is None:
                raise _Corrupt(f"unknown blob encoding in layer '{name}'")
            ndim = r.u8()
            if ndim > MAX_AXES:
                raise _Corrupt(f"layer '{name}': blob with {ndim} axes (Caffe allows "
                               f"at most {MAX_AXES})")
            shape = tuple(r.varint() for _ in range(ndim))
            # exact (Python ints, no int64 wrap-around) and checked against what
            # is left before numpy sees it: crafted dims with valid checksums
            # would otherwise overflow, or ask reshape/unpackbits for petabytes
            n = math.prod(shape)
            if math.prod(d for d in shape if d) > MAX_COUNT:
                # numpy refuses a shape like (0, 2^30, 2^30) even holding no data
                raise _Corrupt(f"layer '{name}': blob shape {'x'.join(map(str, shape))} "
                               f"exceeds Caffe's {MAX_COUNT} elements per blob")
            if n > len(r.data) - r.pos:
                need = {"fp32": 4 * n, "uint8": n}.get(enc, (n + 7) // 8)
                if need > len(r.data) - r.pos:
                    raise _Corrupt(f"layer '{name}': blob shape "
                                   f"{'x'.join(map(str, shape))} needs {need} bytes, "
                                   f"{len(r.data) - r.pos} left in the payload")
            if enc == "fp32":
                arr = np.frombuffer(r.take(4 * n), "<f4").astype(np.float32).reshape(shape)
            elif enc in ("sign", "sign+scale"):
                if not shape:
                    raise _Corrupt(f"scalar pattern blob in layer '{name}'")
                bits = np.unpackbits(np.frombuffer(r.take((n + 7) // 8), np.uint8), count=n)
                arr = bits.astype(bool).reshape(shape)
                if enc == "sign+scale":
                    alpha = np.frombuffer(r.take(4 * shape[0]), "<f4").astype(np.float32)
                    arr = _unsign(arr, alpha)
            else:
                scale, zp = struct.unpack("<fB", r.take(5))
                q = np.frombuffer(r.take(n), np.uint8).reshape(shape)
                arr = dequantize_uint8(q, scale, zp)
            blobs.append([enc, shape, arr])
        for blob in blobs:
            if blob[0] == "sign":
                alpha = blobs[-1][2]
                if blobs[-1][0] != "fp32" or alpha.shape != (blob[1][0],):
                    raise _Corrupt(f"layer '{name}': sign blob without a matching alpha blob")
                blob[2] = _unsign(blob[2], alpha)
        out.append((name, [tuple(b) for b in blobs]))
    if r.pos != len(payload):
        raise _Corrupt("bytes left after the last layer record")
    return out


def _unsign(bits, alpha):
    a = np.asarray(alpha, np.float32).reshape((-1,) + (1,) * (bits.ndim - 1))
    return np.where(bits, a, -a).astype(np.float32)


def unpacked_arrays(net, data, net_path, packed_path):
    """{layer: [arrays]} from packed bytes, checked against the prototxt."""
    _, records = read_packed(data, packed_path)
    defs = {layer.name: layer for layer in unique_layers(net)}
    names = {name for name, _ in records}
    for name, blobs in records:
        if name not in defs:
            raise UserError(packed_path, f"holds layer '{name}' that {net_path} lacks: packed "
                                         "from another net?")
        check_layer_blobs(defs[name], [b[1] for b in blobs], packed_path)
    for layer in defs.values():
        if has_params(layer) and layer.name not in names:
            raise UserError(packed_path, f"has no record for layer '{layer.name}' of "
                                         f"{net_path}: packed from another net?")
    return {name: [b[2] for b in blobs] for name, blobs in records}


def unpack(net, data, net_path, packed_path):
    """A caffemodel NetParameter (layer definitions from the prototxt)."""
    arrays = unpacked_arrays(net, data, net_path, packed_path)
    model = caffe_pb2().NetParameter()
    model.name = net.name
    for layer in unique_layers(net):
        if layer.name in arrays:
            out = model.layer.add()
            out.CopyFrom(layer)
            for arr in arrays[layer.name]:
                set_blob(out.blobs.add(), arr)
    return model


# --------------------------------------------------------------- comparing

def forward_outputs(net, net_path, arrays, source, batches=2, blobs=None, seed=0):
    """Blobs (default: the outputs) of the TEST net over `batches` batches
    (its data layers' batches, or seeded normal noise for Input layers)."""
    from .quant_pattern import CachedBatches
    cnet = open_net(net, "TEST", net_path)
    set_net_params(cnet, arrays, source)
    blobs = list(blobs or cnet.outputs)
    for b in blobs:
        if b not in cnet.blobs:
            raise UserError(net_path, f"the TEST net has no blob '{b}'")
    names = list(cnet._layer_names)
    if all(cnet.layers[i].type == "Input" for i, n in enumerate(names) if not cnet.bottom_names[n]):
        rng = np.random.default_rng(seed)
        feeds = [n for n in cnet.inputs]
        outs = {b: [] for b in blobs}
        for _ in range(batches):
            for b in feeds:
                cnet.blobs[b].data[...] = rng.standard_normal(cnet.blobs[b].data.shape)
            cnet.forward()
            for b in blobs:
                outs[b].append(cnet.blobs[b].data.copy())
        return outs
    return CachedBatches(cnet, batches, net_path).run(blobs)


def compare(net, net_path, arrays_a, arrays_b, source_a, source_b, batches=2, blobs=None):
    """{blob: (max |a - b|, max |a|)} of two weight sets on the same inputs."""
    a = forward_outputs(net, net_path, arrays_a, source_a, batches, blobs)
    b = forward_outputs(net, net_path, arrays_b, source_b, batches, blobs)
    return {k: (float(max(np.max(np.abs(x - y)) for x, y in zip(a[k], b[k]))),
                float(max(np.max(np.abs(x)) for x in a[k]))) for k in a}


# ------------------------------------------------------------------ command

def _read(path):
    require_file(path, "packed model")
    with open(path, "rb") as f:
        return f.read()


def command(a):
    """What ``tools/pack_model.py`` does with its parsed command line."""

    if a.command == "pack":
        out = a.output or a.caffemodel.rsplit(".caffemodel", 1)[0] + ".sepnet"
        refuse_overwrite(out, a.prototxt, a.caffemodel)
        net, model = read_prototxt(a.prototxt), read_caffemodel(a.caffemodel)
        data = pack(net, model, a.prototxt, a.caffemodel, a.bq)
        write_bytes_atomic(out, data)
        s = summarize(a.prototxt, a.caffemodel, a.bq)
        print(f"wrote {out}: {len(data):,} bytes ({len(data) / MB:.4f} MB); the summary "
              f"computes {s.nbytes:,} bytes ({100 * (len(data) - s.nbytes) / s.nbytes:+.2f}%); "
              f"caffemodel {len(model.SerializeToString()):,} bytes")
    elif a.command == "unpack":
        refuse_overwrite(a.output, a.prototxt, a.packed)
        net = read_prototxt(a.prototxt)
        model = unpack(net, _read(a.packed), a.prototxt, a.packed)
        write_bytes_atomic(a.output, model.SerializeToString())
        print(f"wrote {a.output}")
    elif a.command == "info":
        data = _read(a.packed)
        flags, records = read_packed(data, a.packed)
        print(f"{a.packed}: SEP-Nets packed model, version {VERSION}, {len(data):,} bytes, "
              f"{len(records)} layers{', BQ' if flags & FLAG_BQ else ''}")
        for name, blobs in records:
            desc = ", ".join(f"{enc} {'x'.join(map(str, shape))}" for enc, shape, _ in blobs)
            print(f"  {name}: {desc}")
    else:
        if a.batches < 1:
            raise UserError("--batches", "must be at least 1")
        net = read_prototxt(a.prototxt)
        model = read_caffemodel(a.caffemodel)
        ref = model_arrays(net, model, a.prototxt, a.caffemodel)
        got = unpacked_arrays(net, _read(a.packed), a.prototxt, a.packed)
        diffs = compare(net, a.prototxt, ref, got, a.caffemodel, a.packed, a.batches, a.blob)
        for blob, (d, ref_max) in diffs.items():
            print(f"{blob}: max |caffemodel - packed| = {d:.6g}"
                  f"{' (exact)' if d == 0 else ''}; max |caffemodel| = {ref_max:.6g}")
    return 0
