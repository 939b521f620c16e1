"""The results the repository shows are the ones its logs give: the committed
result tables (logs/RESULTS.md and each run's results.md) are what
tools/parse_logs.py makes of the committed logs today, and every accuracy
quoted in the README's Results section is in those tables. So a log committed
without its tables, a table edited by hand, or a README figure typed in or
left behind by a rerun fails here."""
import os
import re
import shutil
import subprocess
import sys

from sepnets import REPO_ROOT

LOGS = os.path.join(REPO_ROOT, "logs")
#: What parse_logs writes (everything else under logs/ is its input or a figure).
GENERATED = re.compile(r"(^|/)(RESULTS\.md|results\.md)$")


def _inputs(tmp):
    """A copy of logs/ without the files parse_logs and plot_logs make."""
    def ignore(folder, names):
        return [n for n in names if n == "csv" or n.endswith((".md", ".png"))]
    shutil.copytree(LOGS, tmp, ignore=ignore)


def _generated(root):
    out = {}
    for folder, _, files in os.walk(root):
        for f in files:
            rel = os.path.relpath(os.path.join(folder, f), root)
            if GENERATED.search(rel):
                with open(os.path.join(folder, f)) as fh:
                    out[rel] = fh.read()
    return out


def test_committed_tables_are_what_the_logs_give(tmp_path):
    """logs/ as a whole, then each run folder with a RESULTS.md of its own
    (the main job's logs/quick/), as `tools/parse_logs.py FOLDER` makes them."""
    copy = tmp_path / "logs"
    _inputs(copy)
    committed = _generated(LOGS)
    roots = sorted(os.path.dirname(rel) for rel in committed
                   if os.path.basename(rel) == "RESULTS.md")
    for root in roots:
        res = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "tools", "parse_logs.py"),
                              str(copy / root), "--quiet"], capture_output=True, text=True,
                             timeout=600)
        assert res.returncode == 0, res.stderr
    made = _generated(copy)
    assert sorted(made) == sorted(committed)
    stale = [rel for rel in made if made[rel] != committed[rel]]
    assert not stale, ("committed tables differ from what `python tools/parse_logs.py logs/` "
                       f"makes of the committed logs: {stale}")


def _readme_results():
    text = open(os.path.join(REPO_ROOT, "README.md")).read()
    m = re.search(r"^## Results\n(.*?)(?=^## )", text, re.M | re.S)
    assert m, "README.md has no '## Results' section"
    return m.group(1)


def test_readme_accuracies_are_in_the_generated_tables():
    """Every top-1/top-5 of the README's Results tables (0.xxxx) stands in
    logs/RESULTS.md, the table generated from the logs (the release's numbers
    included: the generated tables carry them beside ours)."""
    section = _readme_results()
    figures = set(re.findall(r"(?<![\d.])0\.\d{4}(?!\d)", section))
    assert len(figures) >= 8, figures           # the headline table is there
    tables = open(os.path.join(LOGS, "RESULTS.md")).read()
    missing = sorted(f for f in figures if f not in tables)
    assert not missing, f"README figures not in logs/RESULTS.md: {missing}"


SIZES = os.path.join(LOGS, "sizes")
#: Documentation that quotes a committed size table (its table rows must be the file's).
QUOTED_IN = {"model_sizes.md": "docs/compression.md", "parameter_counts.md": "docs/networks.md"}


def _table_rows(text):
    return [ln.rstrip() for ln in text.splitlines() if ln.startswith("|")]


def test_committed_size_tables_are_what_the_tools_print():
    """logs/sizes/*.md each name the command that wrote them in a first-line
    comment; running it now prints the same file, so a catalog change that
    adds or renames a net cannot leave the committed tables (and the docs'
    copies of them) behind, as happened when the CIFAR-10 small nets came."""
    names = sorted(f for f in os.listdir(SIZES) if f.endswith(".md"))
    assert set(QUOTED_IN) <= set(names), names
    for name in names:
        with open(os.path.join(SIZES, name)) as fh:
            first, body = fh.read().split("\n", 1)
        m = re.fullmatch(r"<!-- written by: python (tools/\S+\.py)((?: --?[\w-]+)*) -->", first)
        assert m, f"logs/sizes/{name}: first line names no tool command: {first!r}"
        res = subprocess.run([sys.executable, os.path.join(REPO_ROOT, m.group(1)),
                              *m.group(2).split()], capture_output=True, text=True,
                             cwd=REPO_ROOT, timeout=600)
        assert res.returncode == 0, res.stderr
        assert res.stdout.rstrip() == body.rstrip(), (
            f"logs/sizes/{name} is not what `python {m.group(1)}{m.group(2)}` prints today")
        if name in QUOTED_IN:
            with open(os.path.join(REPO_ROOT, QUOTED_IN[name])) as fh:
                quoted = _table_rows(fh.read())
            rows = set(_table_rows(body))
            assert quoted and not [r for r in quoted if r not in rows], (
                f"{QUOTED_IN[name]}: table rows not in logs/sizes/{name}")
