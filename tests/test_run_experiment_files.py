"""Experiment files (experiments/*.toml), reusing another run's steps, the
resume kit, and a run folder written by the runner before the restructuring
(its state.json format) still being resumed. No caffe training here: the
runs are made of real Caffe protobuf files written by the test."""
import glob
import io
import json
import os
import shutil
import subprocess
import time
import sys

import pytest

from sepnets import REPO_ROOT
from sepnets.errors import UserError

EXPERIMENTS = sorted(glob.glob(os.path.join(REPO_ROOT, "experiments", "*.toml")))
TOOL = os.path.join(REPO_ROOT, "tools", "run_experiment.py")
OLD_STATE = os.path.join(os.path.dirname(__file__), "data", "state_before_restructure.json")


def _parse(*argv):
    from conftest import tool_parser
    from sepnets.pipeline.run_experiment import parse
    return parse(tool_parser("run_experiment"), list(argv))


def _config(*argv):
    from sepnets.pipeline.catalog import experiments
    from sepnets.pipeline.config import RunConfig, schedule
    a = _parse(*argv)
    exp = experiments()[a.name]
    cfg = RunConfig.from_args(a)
    return exp, schedule(exp, cfg), cfg


def test_every_experiment_file_loads():
    assert len(EXPERIMENTS) >= 6
    for path in EXPERIMENTS:
        exp, s, cfg = _config(path)
        run = _run_name(path)
        assert cfg.runs_dir == os.path.join(REPO_ROOT, "runs", run), path
        assert cfg.logs_dir == os.path.join(REPO_ROOT, "logs", run), path
        assert cfg.run_name == run
        assert s["iters"] > 0 and s["finetune_iters"] > 0


def _run_name(path):
    import tomllib
    with open(path, "rb") as f:
        return tomllib.load(f).get("run", os.path.splitext(os.path.basename(path))[0])


def _recorded(path):
    """The experiment.json a run of this file left, if any (logs/<run>/<experiment>/)."""
    import tomllib
    with open(path, "rb") as f:
        exp = tomllib.load(f).get("experiment", "")
    return os.path.join(REPO_ROOT, "logs", _run_name(path), exp, "experiment.json")


@pytest.mark.parametrize("path", [p for p in EXPERIMENTS if os.path.isfile(_recorded(p))])
def test_experiment_file_gives_the_recorded_schedule(path):
    """Each recorded run's file gives the schedule its experiment.json recorded
    (every result-shaping key the record has)."""
    from sepnets.pipeline.config import RESULT_KEYS
    exp, s, cfg = _config(path)
    with open(_recorded(path)) as f:
        recorded = json.load(f)["schedule"]
    for k in RESULT_KEYS:
        if k in recorded:
            assert s[k] == recorded[k], (path, k)


def test_command_line_overrides_the_file():
    path = os.path.join(REPO_ROOT, "experiments", "12000-iters-ste6000-m20.toml")
    exp, s, cfg = _config(path, "--iters", "100", "--runs-dir", "/tmp/elsewhere")
    assert s["iters"] == 100 and s["ste_lr_mult"] == 20.0 and s["bn_recalibrate"] == 200
    assert cfg.runs_dir == "/tmp/elsewhere" and cfg.reuse == "12000-iters" and cfg.ste


@pytest.mark.parametrize("text,message", [
    ('experiment = "cifar10-resnet20"\nitres = 100\n', "unknown key 'itres'"),
    ('iters = 100\n', "names no experiment"),
    ('experiment = "cifar10-resnet20"\nste = "yes"\n', "'ste' must be true or false"),
    ('experiment = "cifar10-resnet20"\niters = [\n', "not a valid experiment file"),
])
def test_bad_experiment_file_is_one_line_naming_it(tmp_path, text, message):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    res = subprocess.run([sys.executable, TOOL, str(f)], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and str(f) in err[0] and message in err[0], res.stderr


# ------------------------------------------------------------------ run folders

def _net_file(path, iteration=None):
    """A real caffemodel (and with `iteration` its solverstate) as Caffe writes them."""
    from sepnets.caffeio.blobs import set_blob
    from sepnets.caffeio.proto import caffe_pb2
    import numpy as np
    pb2 = caffe_pb2()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    m = pb2.NetParameter()
    layer = m.layer.add(name="conv1", type="Convolution")
    set_blob(layer.blobs.add(), np.full((2, 3, 3, 3), 0.5, np.float32))
    with open(path, "wb") as f:
        f.write(m.SerializeToString())
    if iteration is not None:
        st = pb2.SolverState(iter=iteration, learned_net=path, current_step=0)
        set_blob(st.history.add(), np.zeros(4, np.float32))
        with open(path.replace(".caffemodel", ".solverstate"), "wb") as f:
            f.write(st.SerializeToString())


def _runner(tmp_path, *argv, run="this"):
    from sepnets.pipeline.runner import Runner
    exp, s, cfg = _config("cifar10-resnet20", "--runs-dir", str(tmp_path / "runs" / run),
                          "--logs-dir", str(tmp_path / "logs" / run), *argv)
    return Runner(exp, s, cfg, out=io.StringIO())


def _finished_other(tmp_path, iters=12000):
    """runs/other/cifar10-resnet20: steps 1-3 done, with their models."""
    d = tmp_path / "runs" / "other" / "cifar10-resnet20"
    full = d / "1_full" / f"snap_iter_{iters}.caffemodel"
    binary = d / "2_bipattern" / "offset0.04.caffemodel"
    refined = d / "3_refined" / "snap_iter_4000.caffemodel"
    for p in (full, binary, refined):
        _net_file(str(p))
    other = _runner(tmp_path, "--iters", str(iters), run="other")
    os.makedirs(other.runs, exist_ok=True)
    other.load_state()
    other.state["steps"] = {
        "1_full": dict(status="done", done=True, log="1_full.log", max_iter=iters,
                       model=str(full)),
        "2_bipattern": dict(status="done", done=True, chosen=0.04, chosen_label="offset0.04",
                            evaluations={"offset0.04": dict(scale=0.04, model=str(binary),
                                                            log="2_bipattern_offset0.04.log",
                                                            top1=0.139, loss=3.5)}),
        "3_refined": dict(status="done", done=True, log="3_refined.log", max_iter=4000,
                          model=str(refined))}
    other.save_state()
    return full, binary, refined


def test_reuse_takes_the_other_runs_finished_steps(tmp_path):
    full, binary, refined = _finished_other(tmp_path)
    r = _runner(tmp_path, "--iters", "12000", "--ste", "--reuse", "other")
    os.makedirs(r.runs)
    r.load_state()
    steps = r.state["steps"]
    assert list(steps) == ["1_full", "2_bipattern", "3_refined"]
    assert all(steps[s]["reused_from"] == "other" for s in steps)
    assert r.finished("1_full") == str(full)
    assert r.finished("3_refined") == str(refined)
    assert r.bipattern_model("offset0.04") == str(binary)
    assert r.bipattern_step(str(full)) == 0.04          # no caffe: recorded choice
    from sepnets.pipeline.reuse import reused_logs
    assert reused_logs(r) == [os.path.join("..", "..", "other", "cifar10-resnet20", n)
                              for n in ("1_full.log", "2_bipattern_offset0.04.log",
                                        "3_refined.log")]
    # saved in this run's state: a second start does not need the other run's state
    os.remove(tmp_path / "runs" / "other" / "cifar10-resnet20" / "state.json")
    again = _runner(tmp_path, "--iters", "12000", "--ste", "--reuse", "other")
    again.load_state()
    assert again.finished("1_full") == str(full)


def test_reuse_refuses_another_schedule_and_missing_runs(tmp_path):
    _finished_other(tmp_path)
    r = _runner(tmp_path, "--iters", "8000", "--reuse", "other")
    os.makedirs(r.runs)
    with pytest.raises(UserError, match="was run with iters = 12000, not 8000"):
        r.load_state()
    r = _runner(tmp_path, "--reuse", "nowhere", run="third")
    os.makedirs(r.runs)
    with pytest.raises(UserError, match="needs that run's state"):
        r.load_state()


def test_resume_kit_round_trip(tmp_path, monkeypatch):
    """Save the kit of an unfinished run (step 1 done, step 2 done, step 3 at
    a snapshot), restore it into an empty folder, and find every file the
    runner needs to skip or resume there; the kit goes when the run ends."""
    from sepnets.caffeio.snapshots import latest_snapshot
    from sepnets.pipeline import resume
    monkeypatch.setattr(resume, "KIT_ROOT", str(tmp_path / "resume"))
    r = _runner(tmp_path, "--iters", "12000", run="long")
    os.makedirs(r.runs)
    r.load_state()
    full = os.path.join(r.runs, "1_full", "snap_iter_12000.caffemodel")
    binary = os.path.join(r.runs, "2_bipattern", "offset0.04.caffemodel")
    _net_file(full)
    _net_file(binary)
    _net_file(os.path.join(r.runs, "3_refined", "snap_iter_500.caffemodel"), 500)
    _net_file(os.path.join(r.runs, "3_refined", "snap_iter_1000.caffemodel"), 1000)
    r.state["steps"] = {"1_full": dict(status="done", done=True, max_iter=12000, model=full),
                        "2_bipattern": dict(status="done", done=True, chosen=0.04,
                                            chosen_label="offset0.04"),
                        "3_refined": dict(status="running", max_iter=4000)}
    r.save_state()
    kit = resume.save(r)
    assert kit == str(tmp_path / "resume" / "long" / "cifar10-resnet20")
    meta = json.load(open(os.path.join(kit, resume.KIT_FILE)))
    assert sorted(meta["files"]) == sorted([
        "state.json", "1_full/snap_iter_12000.caffemodel", "2_bipattern/offset0.04.caffemodel",
        "3_refined/snap_iter_1000.caffemodel", "3_refined/snap_iter_1000.solverstate"])
    shutil.rmtree(r.runs)                                   # a new machine
    resume.restore(r)
    r.load_state()
    assert r.finished("1_full") == full
    assert latest_snapshot(os.path.join(r.runs, "3_refined", "snap"))[0] == 1000
    with open(os.path.join(kit, "3_refined", "snap_iter_1000.caffemodel"), "ab") as f:
        f.write(b"x")
    with pytest.raises(UserError, match="sha1 differs"):
        resume.restore(r)
    resume.remove_kit(r)
    assert not os.path.exists(kit)


def test_resume_kit_auto_restores_only_into_a_folder_without_state(tmp_path, monkeypatch):
    """--resume-kit auto: a kit and no state here -> restored; the run's own
    (newer) state here -> the kit is left alone; neither -> the run starts."""
    from sepnets.pipeline import resume
    monkeypatch.setattr(resume, "KIT_ROOT", str(tmp_path / "resume"))
    ran = []

    def runner(*argv):
        r = _runner(tmp_path, "--iters", "12000", "--resume-kit", "auto", *argv, run="auto")
        monkeypatch.setattr(r, "run", lambda: ran.append(r.runs))
        return r

    r = runner()
    assert resume.run_with_kit(r) == 0 and ran == [r.runs]
    assert "resume kit: none in" in r.out.getvalue() and not os.path.exists(r.runs)
    os.makedirs(r.runs)
    r.load_state()
    full = os.path.join(r.runs, "1_full", "snap_iter_500.caffemodel")
    _net_file(full, 500)
    r.state["steps"] = {"1_full": dict(status="running", max_iter=12000)}
    r.save_state()
    resume.save(r)
    state = open(os.path.join(r.runs, "state.json")).read()
    r.state["steps"]["1_full"]["note"] = "newer"          # the run went on here
    r.save_state()
    r = runner()
    assert resume.run_with_kit(r) == 0
    assert "not needed" in r.out.getvalue()
    assert "newer" in open(os.path.join(r.runs, "state.json")).read()
    shutil.rmtree(r.runs)                                   # a new machine
    r = runner()
    assert resume.run_with_kit(r) == 0 and len(ran) == 3
    assert "restored into" in r.out.getvalue()
    assert open(os.path.join(r.runs, "state.json")).read() == state
    assert os.path.isfile(full)


def test_run_folder_from_before_the_restructure_resumes(tmp_path, tiny_cifar, monkeypatch):
    """A state.json as the runner wrote it before the restructuring (a real
    one, of the 12000-iters-ste6000-m20 run): the new runner accepts its
    schedule, finds every finished step and runs nothing again but the one
    step added since (2b, recorded here instead of run: the stand-in models
    cannot train)."""
    import dataclasses

    from sepnets.pipeline import runner as runner_module
    from sepnets.pipeline.steps import STEPS
    added = []
    monkeypatch.setattr(runner_module, "STEPS", tuple(
        dataclasses.replace(s, run=lambda r, done, n=s.name: added.append(n))
        if s.name == "2b_bipattern_bn" else s for s in STEPS))
    state = json.load(open(OLD_STATE))
    run = tmp_path / "runs" / "old" / "cifar10-resnet20"
    os.makedirs(run)
    shutil.copy(OLD_STATE, run / "state.json")
    for name, st in state["steps"].items():
        if st.get("max_iter"):
            _net_file(str(run / name / f"snap_iter_{st['max_iter']}.caffemodel"))
    _net_file(str(run / "2_bipattern" / f"{state['steps']['2_bipattern']['chosen_label']}"
                  ".caffemodel"))
    r = _runner(tmp_path, "--iters", "12000", "--ste", "--ste-iters", "6000",
                "--ste-lr-mult", "20", "--bn-recalibrate", "200", "--data", str(tiny_cifar),
                run="old")
    r.run()
    out = r.out.getvalue()
    for step in ("1_full", "1b_full_bn", "3_refined", "3b_refined_bn", "4_ste", "4b_ste_bn"):
        assert f"[{step}] done earlier" in out, out
    assert "[2_bipattern] done earlier: fine-tuning offset0.04" in out
    assert "caffe train" not in out and "binarizing" not in out
    assert added == ["2b_bipattern_bn"]
    # the stand-in models declare no kernel size: no sign-flip record, said in one line
    assert "[4_ste] signs STE changed: not counted (" in out
    assert "declares no kernel size" in out
    assert not (tmp_path / "logs" / "old" / "cifar10-resnet20" / "ste_sign_flips.json").exists()
    after = json.load(open(run / "state.json"))
    assert after["steps"].keys() == state["steps"].keys() and after["finished"]
    assert json.load(open(tmp_path / "logs" / "old" / "cifar10-resnet20" / "state.json")) \
        == after


def test_progress_stream_reads_like_the_log_parser():
    """The progress display's streaming parser gives, after every line, the
    numbers the whole-file parser gives for the text so far (checked at each
    test of a real, resumed training log)."""
    from sepnets.caffeio.log import LogStream, parse_text
    path = os.path.join(REPO_ROOT, "logs", "12000-iters", "cifar10-resnet20", "1_full.log")
    if not os.path.isfile(path):
        path = glob.glob(os.path.join(REPO_ROOT, "logs", "*", "cifar10-resnet20",
                                      "1_full.log"))[0]
    lines = open(path).read().splitlines(keepends=True)
    stream, checked, displays = LogStream(), 0, 0
    for i, line in enumerate(lines):
        if "solver.cpp:" not in line:
            continue
        event, _, _ = stream.feed(line)
        displays += event == "display"
        if event == "display" and displays % 10 == 0:
            whole = parse_text("".join(x for x in lines[:i + 1] if "solver.cpp:" in x))
            acc = whole.accuracy()
            want = (acc.iteration, acc.top1) if acc.top1 is not None else None
            assert stream.test_top1() == want, i
            assert stream.last("loss") == whole.last_value("loss"), i
            checked += 1
    assert checked > 20


def test_derived_runs_reuse_the_committed_record_and_models(tmp_path):
    """On a fresh clone (no runs/), the STE run's file reuses steps 1-3 from
    the record 12000-iters left beside its logs, and their models are the
    ones kept in models/ (sha1 as their readme says)."""
    import hashlib
    from sepnets.pipeline.runner import Runner
    path = os.path.join(REPO_ROOT, "experiments", "12000-iters-ste6000-m20.toml")
    exp, s, cfg = _config(path, "--runs-dir", str(tmp_path / "runs" / "x"),
                          "--logs-dir", os.path.join(REPO_ROOT, "logs", "x"))
    r = Runner(exp, s, cfg, out=io.StringIO())
    os.makedirs(r.runs)
    r.load_state()
    models = {r.finished("1_full"), r.finished("3_refined"), r.bipattern_model("offset0.04")}
    assert all(m.startswith(os.path.join(REPO_ROOT, "models") + os.sep) for m in models)
    for m in models:
        readme = open(os.path.join(os.path.dirname(m), "readme.md")).read()
        assert f"sha1: {hashlib.sha1(open(m, 'rb').read()).hexdigest()}" in readme, m


def test_resnet56_file_is_the_long_runs_command():
    """experiments/resnet56.toml gives what the ResNet-56 run was started with."""
    path = os.path.join(REPO_ROOT, "experiments", "resnet56.toml")
    exp, s, cfg = _config(path)
    _, s2, cfg2 = _config("cifar10-resnet56", "--iters", "12000", "--ste", "--ste-iters", "6000",
                          "--ste-lr-mult", "20", "--bn-recalibrate", "200", "--snapshot", "100",
                          "--keep-snapshots", "3", "--runs-dir", "runs/resnet56",
                          "--logs-dir", "logs/resnet56")
    assert exp.name == "cifar10-resnet56" and s == s2
    assert (cfg.ste, cfg.keep_snapshots) == (cfg2.ste, cfg2.keep_snapshots) == (True, 3)
    assert cfg.runs_dir == os.path.join(REPO_ROOT, "runs", "resnet56")
    assert cfg.logs_dir == os.path.join(REPO_ROOT, "logs", "resnet56")



def test_depth_trend_files_share_the_headline_schedule():
    """Issue 18: one file per depth, each with the recorded ResNet-20 run's
    schedule (12000-iters-ste6000-m20), so that the depth-trend table puts
    them in one section: every result-shaping key agrees, only the net differs."""
    from sepnets.pipeline.config import RESULT_KEYS
    _, ref, _ = _config(os.path.join(REPO_ROOT, "experiments", "12000-iters-ste6000-m20.toml"))
    depths = {}
    for depth in (32, 44, 56):
        exp, s, cfg = _config(os.path.join(REPO_ROOT, "experiments", f"resnet{depth}.toml"))
        assert exp.name == f"cifar10-resnet{depth}"
        assert {k: s.get(k) for k in RESULT_KEYS} == {k: ref.get(k) for k in RESULT_KEYS}, depth
        assert s["snapshot"] == 100, depth
        depths[depth] = cfg.run_name
    assert depths == {32: "resnet32", 44: "resnet44", 56: "resnet56"}


def test_small_net_files_share_one_schedule():
    """The small-network comparison's files (the SqueezeNet retry without
    relu_conv10 included) agree on every result-shaping key and write one
    run folder, so that one table sets them side by side."""
    from sepnets.pipeline.config import RESULT_KEYS
    files = ("small-nets-mobilenet", "small-nets-squeezenet", "small-nets-squeezenet-linear")
    got = {}
    for f in files:
        exp, s, cfg = _config(os.path.join(REPO_ROOT, "experiments", f + ".toml"))
        got[f] = ({k: s.get(k) for k in RESULT_KEYS}, cfg.run_name)
    assert len({repr(v) for v in got.values()}) == 1, got
    exp, _, _ = _config(os.path.join(REPO_ROOT, "experiments", files[-1] + ".toml"))
    assert exp.name == "cifar10-squeezenet-linear" and exp.mean is None


def test_long_runs_queue_every_long_experiment():
    """scripts/long_runs.sh list: the queues run every depth-trend and
    small-network file, each once without options (after SEP-Net's step 1 with
    --until), and the run folder the script copies is the one the file's
    runner writes (its run key)."""
    res = subprocess.run(["bash", os.path.join(REPO_ROOT, "scripts", "long_runs.sh"), "list"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    rows = [ln.split("\t") for ln in res.stdout.splitlines()]
    assert {q for q, *_ in rows} == {"queue1", "queue2"}
    plain = [line for _, line, _, _ in rows if " " not in line]
    want = ["experiments/resnet56.toml", "experiments/resnet32.toml",
            "experiments/resnet44.toml", "experiments/small-nets-sepnet.toml",
            "experiments/small-nets-mobilenet.toml", "experiments/small-nets-squeezenet.toml",
            "experiments/small-nets-squeezenet-linear.toml"]
    assert sorted(plain) == sorted(want)
    for _, line, run, name in rows:
        exp, _, cfg = _config(os.path.join(REPO_ROOT, line.split()[0]))
        assert (cfg.run_name, exp.name) == (run, name), line


def test_long_runs_stop_returns_when_the_queues_are_gone(tmp_path):
    """`long_runs.sh stop` then `start` must find the queues stopped (start
    moves the worktree to HEAD only then; it once found them still exiting
    and kept the old code): stop waits until each queue's script has exited.
    Here a stand-in queue whose child takes 2 s to act on SIGTERM."""
    out = tmp_path / "run" / "long_runs"
    out.mkdir(parents=True)
    queue = subprocess.Popen(["bash", "-c", "set -e; sh -c 'trap \"sleep 2; exit 1\" TERM; "
                              "while :; do sleep 0.1; done'; echo never"],   # no exec: a child
                             start_new_session=True)
    (out / "queue1.pid").write_text(f"{queue.pid}\n")
    time.sleep(0.5)                       # the child is there to be signalled
    env = {**os.environ, "SEPNETS_RUN_WORKTREE": str(tmp_path / "run"), "SEPNETS_STOP_WAIT": "30"}
    res = subprocess.run(["bash", os.path.join(REPO_ROOT, "scripts", "long_runs.sh"), "stop"],
                         capture_output=True, text=True, timeout=60, env=env)
    gone = queue.poll() is not None       # checked before this process reaps it
    queue.wait(timeout=30)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "queue1: stopping (SIGTERM)" in res.stdout and "queue1: stopped" in res.stdout
    assert gone, "stop returned while the queue was still running"


def test_long_runs_sync_copies_complete_log_lines(tmp_path):
    """`long_runs.sh sync` copies the worktree's logs while caffe writes them:
    a log caught mid-line must arrive up to its last complete line, the run's
    README in this checkout must stay, and the sync must go on to remake the
    tables (a tar copy once stopped it with "file changed as we read it").
    Here in a made-up checkout (the script, the queue files, stand-in table
    tools) and worktree (a finished run, so no kit is saved)."""
    root, wt = tmp_path / "root", tmp_path / "run"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(os.path.join(REPO_ROOT, "scripts", "long_runs.sh"), root / "scripts")
    shutil.copytree(os.path.join(REPO_ROOT, "experiments"), root / "experiments")
    (root / ".venv" / "bin").mkdir(parents=True)
    os.symlink(sys.executable, root / ".venv" / "bin" / "python")
    (root / "tools").mkdir()
    for tool in ("parse_logs.py", "plot_logs.py"):
        (root / "tools" / tool).write_text(
            f"import sys\nopen({str(tmp_path / 'made')!r}, 'a').write({tool!r} + '\\n')\n")
    exp = wt / "runs" / "small-nets" / "cifar10-mobilenet"
    exp.mkdir(parents=True)
    (exp / "state.json").write_text('{"finished": "2026-12-03 19:57:49"}')
    logs = wt / "logs" / "small-nets"
    (logs / "cifar10-mobilenet").mkdir(parents=True)
    (logs / "cifar10-mobilenet" / "1_full.log").write_bytes(
        b"I1 Iteration 100\nI2 Test net output #0: accuracy = 0.7")
    (logs / "README.md").write_text("the worktree's copy\n")
    (root / "logs" / "small-nets").mkdir(parents=True)
    (root / "logs" / "small-nets" / "README.md").write_text("the run's story\n")
    env = {**os.environ, "SEPNETS_RUN_WORKTREE": str(wt),
           "PYTHONPATH": os.path.join(REPO_ROOT, "python")}
    res = subprocess.run(["bash", str(root / "scripts" / "long_runs.sh"), "sync"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    got = root / "logs" / "small-nets"
    assert (got / "cifar10-mobilenet" / "1_full.log").read_bytes() == b"I1 Iteration 100\n"
    assert (got / "README.md").read_text() == "the run's story\n"
    assert (tmp_path / "made").read_text().split() == ["parse_logs.py", "parse_logs.py",
                                                       "plot_logs.py"]
