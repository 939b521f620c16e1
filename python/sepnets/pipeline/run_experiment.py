"""``tools/run_experiment.py``'s side in the package: its option types, experiment
files and what it does with a parsed command line (the parser is the tool's). An experiment
is named (``cifar10-resnet20``, see --list) or given as an experiment file
(``experiments/NAME.toml``, one per recorded run), whose keys are this
command's long options (``ste-lr-mult = 20`` or ``ste_lr_mult = 20``) plus:

* ``experiment``: the catalog experiment (required);
* ``run``: the run's name, i.e. ``--runs-dir runs/<run> --logs-dir logs/<run>``
  (default: the file's name);
* ``reuse``, ``reuse-steps``: take finished steps from another run
  (:mod:`.reuse`);
* a ``description`` (free text, ignored here).

Options given on the command line override the file's.
"""
import math
import os
import sys

from .. import REPO_ROOT
from ..errors import UserError
from .catalog import experiments, list_experiments
from .config import RunConfig, schedule

_TOML_ONLY = ("experiment", "run", "description")


def positive_int(name):
    def conv(text):
        try:
            v = int(text)
        except ValueError:
            v = 0
        if v < 1:
            raise UserError(name, f"'{text}' must be a whole number >= 1")
        return v
    return conv


def positive_float(name):
    def conv(text):
        try:
            v = float(text)
        except ValueError:
            v = math.nan
        if not (v > 0 and math.isfinite(v)):
            raise UserError(name, f"'{text}' must be a number > 0")
        return v
    return conv


def fraction(text):
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not 0 < v < 1:
        raise UserError("--bn-fraction", f"'{text}' must be a number between 0 and 1")
    return v


def sweep_arg(text):
    if text not in ("release", "none"):
        from ..compress.binarize import parse_sweep
        parse_sweep(text)
    return text



def steps_arg(text):
    from .steps import BY_NAME
    steps = tuple(s.strip() for s in text.split(",") if s.strip())
    for s in steps:
        if s not in BY_NAME:
            raise UserError("--reuse-steps", f"unknown step '{s}'; steps: " + ", ".join(BY_NAME))
    return steps


def step_arg(text):
    from .steps import BY_NAME
    if text not in BY_NAME:
        raise UserError("--until", f"unknown step '{text}'; steps: " + ", ".join(BY_NAME))
    return text


def load_toml(path, p):
    """An experiment file as (experiment, [argv...]): its keys turned into the
    options they name, so that the parser checks them like typed ones."""
    import tomllib
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise UserError(path, "experiment file not found") from None
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise UserError(path, f"not a valid experiment file ({e})") from None
    if not isinstance(doc.get("experiment"), str):
        raise UserError(path, "names no experiment (experiment = \"cifar10-resnet20\")")
    known = {a.dest: a for a in p._actions if a.option_strings}
    run = doc.get("run", os.path.splitext(os.path.basename(path))[0])
    argv = ["--runs-dir", os.path.join(REPO_ROOT, "runs", run),
            "--logs-dir", os.path.join(REPO_ROOT, "logs", run)]
    for key, value in doc.items():
        if key in _TOML_ONLY:
            continue
        dest = key.replace("-", "_")
        action = known.get(dest)
        if action is None or dest in ("help", "list"):
            raise UserError(path, f"unknown key '{key}' (keys are the long options of "
                            "run_experiment.py, plus experiment, run, description)")
        opt = max(action.option_strings, key=len)
        if action.nargs == 0:
            if not isinstance(value, bool):
                raise UserError(path, f"'{key}' must be true or false")
            argv += [opt] if value else []
        elif isinstance(value, list):
            argv += [opt, ",".join(str(v) for v in value)]
        else:
            argv += [opt, str(value)]
    return doc["experiment"], argv


def parse(p, argv=None):
    """The command line parsed by `p` (the tool's parser), an experiment
    file's options under it."""
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((x for x in argv if not x.startswith("-")), None)
    if first and first.endswith(".toml"):
        name, file_argv = load_toml(first, p)
        i = argv.index(first)
        a = p.parse_args(file_argv + [name] + argv[:i] + argv[i + 1:])
        a.toml = first
        return a
    return p.parse_args(argv)


def command(a):
    """What ``tools/run_experiment.py`` does with its parsed command line."""
    from ..caffeio.run import install_sigterm
    from .runner import Runner
    exps = experiments()
    if a.list:
        list_experiments(exps, os.path.abspath(a.data), sys.stdout)
        return 0
    if not a.name:
        raise UserError("NAME", "give an experiment to run (see --list)")
    if a.name not in exps:
        raise UserError(a.name, "unknown experiment; known: " + ", ".join(exps))
    if a.keep_snapshots < 0:
        raise UserError("--keep-snapshots", "must be >= 0")
    exp = exps[a.name]
    cfg = RunConfig.from_args(a)
    install_sigterm()
    runner = Runner(exp, schedule(exp, cfg), cfg)
    if cfg.resume_kit:
        from . import resume
        return resume.run_with_kit(runner)
    runner.run()
    return 0
