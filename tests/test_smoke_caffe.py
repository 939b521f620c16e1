"""The built Caffe runs a stock Convolution net forward and backward, through
the `caffe` tool and through pycaffe, and knows the project's layer."""
import subprocess

import numpy as np


def _net(caffe, layer_type="Convolution", **extra):
    from caffe import layers as L
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 3, 16, 16]))
    n.label = L.Input(shape=dict(dim=[2]))
    conv = dict(num_output=4, kernel_size=3, pad=1, weight_filler=dict(type="msra"))
    n.conv = getattr(L, layer_type)(n.data, convolution_param=conv, **extra)
    n.fc = L.InnerProduct(n.conv, num_output=3, weight_filler=dict(type="xavier"))
    n.loss = L.SoftmaxWithLoss(n.fc, n.label)
    proto = n.to_proto()
    proto.force_backward = True
    return str(proto)


def test_caffe_version(caffe_bin):
    out = subprocess.run([caffe_bin, "--version"], capture_output=True, text=True, check=True)
    assert "caffe version 1.0.0" in (out.stdout + out.stderr)


def test_caffe_time_runs_forward_backward(caffe, caffe_bin, tmp_path):
    model = tmp_path / "smoke.prototxt"
    model.write_text(_net(caffe))
    out = subprocess.run([caffe_bin, "time", "-model", str(model), "-iterations", "2"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Average Forward-Backward" in out.stderr
    assert "conv\tforward" in out.stderr and "conv\tbackward" in out.stderr


def test_pycaffe_forward_backward(caffe, tmp_path):
    model = tmp_path / "smoke.prototxt"
    model.write_text(_net(caffe))
    net = caffe.Net(str(model), caffe.TRAIN)
    rng = np.random.default_rng(0)
    net.blobs["data"].data[...] = rng.standard_normal(net.blobs["data"].data.shape)
    net.blobs["label"].data[...] = [0, 2]
    loss = net.forward()["loss"]
    assert np.isfinite(loss) and loss > 0
    net.backward()
    grad = net.params["conv"][0].diff
    assert np.abs(grad).sum() > 0
    assert np.abs(net.blobs["data"].diff).sum() > 0


def test_pattern_layer_registered(caffe, tmp_path):
    model = tmp_path / "pattern.prototxt"
    model.write_text(_net(caffe, layer_type="BinaryPatternConvolution",
                          binary_pattern_param=dict(scale_mode=0)))
    net = caffe.Net(str(model), caffe.TRAIN)
    net.blobs["data"].data[...] = 1.0
    net.blobs["label"].data[...] = [0, 1]
    net.forward()
    w, alpha = net.params["conv"][0].data, net.params["conv"][2].data
    np.testing.assert_allclose(alpha, np.abs(w).reshape(4, -1).mean(1), rtol=1e-5)
