"""prepare_imagenet.py --sample: the smoke-run data set the SEP-Net solver's
missing-LMDB message points to, made from the shared 186-image sample."""
import os
import subprocess
import sys

TOOL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools",
                    "prepare_imagenet.py")


def test_sample_makes_train_and_val_and_says_so(shared_dir, tmp_path):
    from sepnets.data.datum_lmdb import lmdb_count
    out = tmp_path / "ilsvrc12"
    r = subprocess.run([sys.executable, TOOL, "--sample",
                        os.path.join(shared_dir, "data", "imagenet-sample.tar"),
                        "--out", str(out), "--resize", "64"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert lmdb_count(str(out / "train_lmdb")) == 186
    assert lmdb_count(str(out / "val_lmdb")) == 186
    assert r.stdout.strip().splitlines()[-1].startswith("SMOKE RUN:")
    assert "BOTH the training and the validation set" in r.stdout


def test_sample_refuses_train_and_bad_archives(tmp_path):
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"not a tar archive")
    r = subprocess.run([sys.executable, TOOL, "--sample", str(bad), "--out",
                        str(tmp_path / "o")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "bad.tar" in r.stderr and "tar archive" in r.stderr
    r = subprocess.run([sys.executable, TOOL, "--sample", str(bad), "--train", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--sample replaces" in r.stderr
    assert not (tmp_path / "o").exists()
