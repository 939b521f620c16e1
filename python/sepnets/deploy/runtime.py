"""Two ways to run an inference net on a batch: Caffe's forward (pycaffe, the
reference) and onnxruntime on the exported graph. Both take and give float32
NCHW arrays keyed by blob name, so the classifier and the tests can hold one
against the other.
"""
import os

import numpy as np

from . import _caffeio as io
from . import netdef


class CaffeBackend:
    """pycaffe forward of an InferenceNet with given weights."""
    name = "caffe"

    def __init__(self, inet, arrays, source, cnet=None):
        """`cnet`: a pycaffe Net of `inet` already built (saves building it again)."""
        caffe = io.import_caffe()
        caffe.set_mode_cpu()
        self.cnet = cnet if cnet is not None else netdef.caffe_net(inet, source)
        io.set_net_params(self.cnet, arrays, source)
        self.inputs = list(self.cnet.inputs)
        self.outputs = list(self.cnet.outputs)

    def run(self, feeds):
        for name, x in feeds.items():
            blob = self.cnet.blobs[name]
            if blob.data.shape != x.shape:
                blob.reshape(*x.shape)
        self.cnet.reshape()
        for name, x in feeds.items():
            self.cnet.blobs[name].data[...] = x
        out = self.cnet.forward()
        return {k: np.array(v, np.float32, copy=True) for k, v in out.items()}


class OnnxBackend:
    """onnxruntime on an ONNX model (ModelProto, bytes or path), CPU only."""
    name = "onnxruntime"

    def __init__(self, model, threads=None):
        import onnxruntime as ort
        opts = ort.SessionOptions()
        threads = threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        if hasattr(model, "SerializeToString"):
            model = model.SerializeToString()
        try:
            self.session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            where = model if isinstance(model, str) else "ONNX model"
            raise io.UserError(where, f"onnxruntime cannot load it "
                                      f"({str(e).splitlines()[0]})") from None
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]

    def run(self, feeds):
        res = self.session.run(self.outputs, {k: np.ascontiguousarray(v, np.float32)
                                              for k, v in feeds.items()})
        return dict(zip(self.outputs, res))


def random_weights(inet, cnet, seed=0):
    """{layer: [arrays]} for a pycaffe net: its fillers' weights, plus what
    the fillers leave degenerate made random (BatchNorm statistics, Scale,
    some pattern alphas bound, others left 0 = unbound), so that every part
    of a conversion is exercised. For tests and size reports of untrained nets."""
    rng = np.random.default_rng(seed)
    defs = {layer.name: layer for layer in inet.net.layer}
    out = {}
    for name, blobs in cnet.params.items():
        arrs = [b.data.copy() for b in blobs]
        layer = defs.get(name)
        t = layer.type if layer is not None else None
        if t == "BatchNorm":
            n = arrs[0].size
            factor = np.float32(rng.uniform(0.5, 2.0))
            arrs[0][...] = rng.normal(0, 0.5, n) * factor
            arrs[1][...] = rng.uniform(0.5, 2.0, n) * factor
            arrs[2][...] = factor
        elif t == "Scale":
            arrs[0][...] = rng.uniform(0.5, 1.5, arrs[0].shape)
            arrs[0].reshape(-1)[::7] *= -1          # negative gammas flip folded signs
            for a in arrs[1:]:
                a[...] = rng.normal(0, 0.1, a.shape)
        elif t == io.BPC and len(arrs) == 2 + int(layer.convolution_param.bias_term):
            w = arrs[0].reshape(arrs[0].shape[0], -1)
            alpha = np.abs(w).mean(axis=1) * rng.uniform(0.5, 1.5, w.shape[0])
            alpha[::2] = 0                           # unbound: the layer binds mean |W_c|
            arrs[-1][...] = alpha
        elif t in ("Convolution", "InnerProduct", io.BPC) and len(arrs) > 1:
            arrs[1][...] = rng.normal(0, 0.05, arrs[1].shape)
        out[name] = arrs
    return out


def max_rel_diff(a, b):
    """max |a - b| / max(max |b|, tiny): the tests' relative error measure."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))
