"""tools/draw_nets.py: the one-block nets are the generator's own blocks, and
Caffe's draw_net.py draws them (the pictures of docs/networks.md)."""
import os
import subprocess
import sys

from sepnets import REPO_ROOT


def test_block_nets_are_the_generators_blocks(caffe, tmp_path):
    from google.protobuf import text_format
    from sepnets.report.draw_nets import block_net
    prb = block_net("prb")
    types = [layer.type for layer in prb.layer]
    assert types.count("Convolution") == 2 and types.count("Eltwise") == 1
    assert {layer.convolution_param.group for layer in prb.layer
            if layer.type == "Convolution"} == {4}
    mod = block_net("sep_module")
    assert [layer.name for layer in mod.layer if layer.type == "Eltwise"] == \
        ["module/slice1/sum", "module/slice2/sum", "module/sum"]
    path = tmp_path / "m.prototxt"
    path.write_text(text_format.MessageToString(mod))
    net = caffe.Net(str(path), caffe.TEST)
    assert net.blobs["module/sum"].data.shape == (1, 128, 56, 56)


def test_tool_draws_every_figure(tmp_path):
    res = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "tools", "draw_nets.py"),
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    for name in ("prb.png", "sep_module.png", "sepnet-r.svg", "prb.prototxt"):
        assert (tmp_path / name).stat().st_size > 1000, name
    assert (tmp_path / "prb.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    committed = os.path.join(REPO_ROOT, "docs", "figures", "prb.prototxt")
    assert (tmp_path / "prb.prototxt").read_text() == open(committed).read()
