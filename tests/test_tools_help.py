"""Every command line in tools/ is a thin entry point whose --help ends with examples."""
import glob
import os
import subprocess
import sys

import pytest

from sepnets import REPO_ROOT

TOOLS = sorted(glob.glob(os.path.join(REPO_ROOT, "tools", "*.py")))


def test_tools_are_found():
    assert len(TOOLS) >= 10


@pytest.mark.parametrize("tool", TOOLS, ids=os.path.basename)
def test_help_has_examples(tool):
    res = subprocess.run([sys.executable, tool, "--help"], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert "examples:" in res.stdout
    assert f"python tools/{os.path.basename(tool)}" in res.stdout.split("examples:")[1]
