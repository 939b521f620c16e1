"""The experiment runner killed and restarted: it must continue each step from
its newest snapshot, never redo a finished step, and leave a complete table.

Runs the real runner (and so the real caffe binary) on ResNet-20 of the
catalog with a few hundred real CIFAR-10 images and tiny iteration counts.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

RUN = ["cifar10-resnet20", "--iters", "60", "--finetune-iters", "30", "--batch", "8",
       "--snapshot", "10", "--test-interval", "20", "--test-iter", "1", "--display", "5",
       "--sweep", "release"]


def _argv(repo_root, tmp, data):
    return [sys.executable, os.path.join(repo_root, "tools", "run_experiment.py"), *RUN,
            "--data", str(data), "--runs-dir", str(tmp / "runs"),
            "--logs-dir", str(tmp / "logs")]


def _run_until(argv, log, pattern, sig, whom="group", timeout=240):
    """Start the runner in its own process group; when `pattern` shows up in
    `log`, send `sig` to the group (or the runner alone). Returns (rc, output,
    caffe pid seen in the log)."""
    # Default SIGINT in the runner even when the tests run in the background
    # (a shell starts background jobs with SIGINT ignored, and Python keeps
    # an ignored SIGINT ignored).
    p = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    t0 = time.time()
    sent = False
    try:
        while p.poll() is None and time.time() - t0 < timeout:
            text = open(log, errors="replace").read() if os.path.exists(log) else ""
            if re.search(pattern, text):
                if whom == "group":
                    os.killpg(p.pid, sig)
                else:
                    os.kill(p.pid, sig)
                sent = True
                break
            time.sleep(0.02)
        out = p.communicate(timeout=STOP_WAIT)[0].decode()
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert sent, f"{pattern!r} never appeared in {log}; runner said:\n{out}"
    pids = re.findall(r"^I\d+ [\d:.]+\s+(\d+) solver\.cpp", open(log).read(), re.M)
    return p.returncode, out, int(pids[-1])


STOP_WAIT = 120


def _gone(pid, wait=10):
    t0 = time.time()
    while time.time() - t0 < wait:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ", 1)[1].startswith("Z"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.1)
    return False


def _snapshot_written(n):
    # the solverstate line, then the lines Caffe logs after writing it
    return rf"solver state to binary proto file \S+snap_iter_{n}\.solverstate\n(?:.*\n){{2}}"


def _resumes(log_path):
    """[(iteration resumed from, first iteration the resumed run displayed)]."""
    text = open(log_path).read()
    out = []
    for m in re.finditer(r"Resuming from \S+snap_iter_(\d+)\.solverstate", text):
        d = re.compile(r"\] Iteration (\d+) \(").search(text, m.end())
        out.append((int(m.group(1)), int(d.group(1)) if d else None))
    return out


@pytest.fixture(scope="module")
def killed_runs(repo_root, tiny_cifar, tmp_path_factory):
    """Kill the runner during step 1 (SIGKILL to its group, then Ctrl-C) and
    step 3 (SIGKILL to the runner alone), then let it finish."""
    tmp = tmp_path_factory.mktemp("runner")
    argv = _argv(repo_root, tmp, tiny_cifar)
    logs = tmp / "logs" / "cifar10-resnet20"
    r = {"tmp": tmp, "logs": logs, "runs": tmp / "runs" / "cifar10-resnet20", "argv": argv}
    r["kill1"] = _run_until(argv, logs / "1_full.log", _snapshot_written(10), signal.SIGKILL)
    r["state1"] = json.loads((r["runs"] / "state.json").read_text())
    r["int"] = _run_until(argv, logs / "1_full.log", r"\] Iteration 2[0-9] \(", signal.SIGINT)
    r["kill3"] = _run_until(argv, logs / "3_refined.log", _snapshot_written(10),
                            signal.SIGKILL, whom="runner")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    r["final"] = done
    r["sizes"] = {p.name: p.stat().st_size for p in logs.glob("*.log")}
    return r


def test_kill_in_step1_kills_caffe_and_resumes_from_snapshot(killed_runs):
    rc, out, caffe_pid = killed_runs["kill1"]
    assert rc == -signal.SIGKILL
    assert _gone(caffe_pid), "caffe kept running after its process group was killed"
    assert killed_runs["state1"]["steps"]["1_full"]["status"] == "running"
    log = os.path.join(killed_runs["logs"], "1_full.log")
    resumes = _resumes(log)
    # resumed from the snapshot at 10 (SIGKILL), then from the one Ctrl-C made;
    # each resumed run went on from there (its first displayed iteration)
    assert resumes[0] == (10, 10), resumes
    assert len(resumes) == 2 and 20 <= resumes[1][0] < 60, resumes
    assert resumes[1][0] <= resumes[1][1] < resumes[1][0] + 5, resumes


def test_ctrl_c_snapshots_and_exits_130(killed_runs):
    rc, out, caffe_pid = killed_runs["int"]
    assert rc == 130, out
    assert "run the same command again" in out
    assert _gone(caffe_pid)
    text = open(os.path.join(killed_runs["logs"], "1_full.log")).read()
    assert "Optimization stopped early." in text


def test_kill_in_step3_kills_caffe_and_resumes(killed_runs):
    rc, out, caffe_pid = killed_runs["kill3"]
    assert rc == -signal.SIGKILL
    assert _gone(caffe_pid), "caffe survived the SIGKILL of the runner"
    assert re.search(r"\[1_full\] full precision: resuming from iteration \d+ of 60", out), out
    assert _resumes(os.path.join(killed_runs["logs"], "3_refined.log")) == [(10, 10)]


def test_finished_run_has_complete_logs_and_table(killed_runs):
    from sepnets.caffeio.log import parse_log
    done = killed_runs["final"]
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "[1_full] done earlier" in out and "[2_bipattern] done earlier" in out
    assert "resuming from iteration 10 of 30" in out
    logs = killed_runs["logs"]
    full = parse_log(str(logs / "1_full.log"))
    assert full.complete and full.last_iteration == 60 and full.segments == 3
    refined = parse_log(str(logs / "3_refined.log"))
    assert refined.complete and refined.last_iteration == 30 and refined.segments == 2
    # step 2 ran once: one evaluation per log, of the binarized full model
    evals = sorted(p.name for p in logs.glob("2_bipattern_*.log"))
    assert evals == ["2_bipattern_mean.log", "2_bipattern_offset0.09.log"]
    for name in evals:
        assert (logs / name).read_text().count("Running for 1 iterations.") == 1
    meta = json.loads((logs / "experiment.json").read_text())
    assert meta["bipattern_log"] in evals and meta["name"] == "cifar10-resnet20"
    state = json.loads((killed_runs["runs"] / "state.json").read_text())
    assert all(state["steps"][s]["done"] for s in ("1_full", "2_bipattern", "3_refined"))
    # the table: every step has a number, and they are the logs' numbers
    md = (logs / "results.md").read_text()
    row = next(ln for ln in md.splitlines() if ln.startswith("| ResNet-20 |"))
    assert "- <br /> -" not in row
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3].startswith(f"{full.accuracy().top1:.4f}")
    assert cells[5].startswith(f"{refined.accuracy().top1:.4f}")
    png = logs / "training_curves.png"
    assert png.stat().st_size > 10000


def test_rerun_after_completion_redoes_nothing(killed_runs):
    again = subprocess.run(killed_runs["argv"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("done earlier") == 3
    logs = killed_runs["logs"]
    assert {p.name: p.stat().st_size for p in logs.glob("*.log")} == killed_runs["sizes"]


def test_finished_run_on_a_new_machine_is_not_trained_again(killed_runs, tmp_path):
    """A finished run's kit is removed and runs/ is not committed, so on a new
    machine only its logs (with state.json) are there: the runner must say the
    run is finished and leave the committed logs alone, not train it again
    over them (it once retrained MobileNet from scratch after a move)."""
    logs = tmp_path / "logs" / "cifar10-resnet20"
    shutil.copytree(killed_runs["logs"], logs)
    def files():
        return {str(p.relative_to(logs)): p.read_bytes()
                for p in sorted(logs.rglob("*")) if p.is_file()}
    before = files()
    assert "state.json" in before
    argv = list(killed_runs["argv"])
    argv[argv.index("--runs-dir") + 1] = str(tmp_path / "runs")
    argv[argv.index("--logs-dir") + 1] = str(tmp_path / "logs")
    res = subprocess.run(argv + ["--resume-kit", "auto"], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "finished on " in res.stdout and "nothing to run" in res.stdout, res.stdout
    assert "full precision" not in res.stdout
    assert files() == before
    assert not (tmp_path / "runs" / "cifar10-resnet20" / "state.json").exists()


def test_rerun_with_another_schedule_is_refused(killed_runs):
    argv = list(killed_runs["argv"])
    argv[argv.index("--iters") + 1] = "50"
    res = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and "state.json" in err[0] and "iters = 60, not 50" in err[0], err


def test_resume_point_skips_a_cut_solverstate(killed_runs, tmp_path):
    from sepnets.caffeio.snapshots import latest_snapshot
    src = killed_runs["runs"] / "3_refined"
    for f in src.glob("snap_iter_*"):
        shutil.copy(f, tmp_path / f.name)
    prefix = str(tmp_path / "snap")
    assert latest_snapshot(prefix)[0] == 30
    state = tmp_path / "snap_iter_30.solverstate"
    state.write_bytes(state.read_bytes()[:-3])
    assert latest_snapshot(prefix)[0] == 20
    model = tmp_path / "snap_iter_20.caffemodel"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    assert latest_snapshot(prefix)[0] == 10


def test_ste_step_starts_from_emptied_batchnorm_statistics(killed_runs, caffe):
    """--ste on the finished run adds step 4 only, from a copy of the
    full-precision model whose BatchNorm statistics are emptied (as step 3's
    binarized model), and not tested before its first iteration."""
    from caffe.proto import caffe_pb2
    from sepnets.caffeio.log import parse_log
    res = subprocess.run(killed_runs["argv"] + ["--ste"], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("done earlier") == 3
    start = killed_runs["runs"] / "4_ste" / "full_bn_reset.caffemodel"
    model = caffe_pb2.NetParameter()
    model.ParseFromString(start.read_bytes())
    bn = [layer for layer in model.layer if layer.type == "BatchNorm"]
    assert len(bn) == 21 and all(not any(b.data) for layer in bn for b in layer.blobs)
    log_text = (killed_runs["logs"] / "4_ste.log").read_text()
    assert f"Finetuning from {start}" in log_text
    assert "Iteration 0, Testing net" not in log_text
    ste = parse_log(str(killed_runs["logs"] / "4_ste.log"))
    assert ste.complete and ste.last_iteration == 30
    row = next(ln for ln in (killed_runs["logs"] / "results.md").read_text().splitlines()
               if ln.startswith("| ResNet-20 |"))
    assert row.rstrip(" |").endswith(f"{ste.accuracy().top1:.4f} <br /> "
                                     f"{ste.accuracy().top5:.4f}")


def test_bn_recalibration_changes_only_the_statistics(killed_runs, caffe):
    """--bn-recalibrate on the finished run (after the STE test above) adds
    1b/2b/3b/4b: caffe train at base_lr 0 from emptied statistics, so every
    weight is the trained step's and only BatchNorm's blobs are new; the
    table gets their columns and the figure their points."""
    from caffe.proto import caffe_pb2
    from sepnets.caffeio.log import parse_log
    res = subprocess.run(killed_runs["argv"] + ["--ste", "--bn-recalibrate", "4"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("done earlier") == 4
    runs, logs = killed_runs["runs"], killed_runs["logs"]

    def blobs(path):
        m = caffe_pb2.NetParameter()
        m.ParseFromString(path.read_bytes())
        return {layer.name: (layer.type, [list(b.data) for b in layer.blobs])
                for layer in m.layer if layer.blobs}

    chosen = json.loads((runs / "state.json").read_text())["steps"]["2_bipattern"]
    for step, base in (("1b_full_bn", "1_full/snap_iter_60"),
                       ("2b_bipattern_bn", f"2_bipattern/{chosen['chosen_label']}"),
                       ("3b_refined_bn", "3_refined/snap_iter_30"),
                       ("4b_ste_bn", "4_ste/snap_iter_30")):
        log = parse_log(str(logs / f"{step}.log"))
        assert log.complete and log.last_iteration == 4
        assert log.accuracy().top1 is not None
        new, old = blobs(runs / step / "snap_iter_4.caffemodel"), blobs(runs / f"{base}.caffemodel")
        assert new.keys() == old.keys()
        bn = [n for n, (t, _) in new.items() if t == "BatchNorm"]
        assert len(bn) == 21
        assert all(new[n] == old[n] for n in new if n not in bn), step
        assert all(new[n][1][2] == [pytest.approx(sum(0.999 ** k for k in range(4)))]
                   for n in bn), step                      # 4 batches averaged from zero
        assert any(new[n][1][0] != old[n][1][0] for n in bn), step
    head = next(ln for ln in (logs / "results.md").read_text().splitlines()
                if ln.startswith("| Model |"))
    assert head.startswith("| Model | Acc | Ref | Full | Full, BN re-est. | BiPattern | "
                           "BiPattern, BN re-est. | Refined | Refined, BN re-est. | STE | "
                           "STE, BN re-est. |")
    assert (logs / "training_curves.png").stat().st_size > 10000
