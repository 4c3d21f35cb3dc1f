"""The front-door docs run as written: the README's Python snippets (in a fresh interpreter, in
order) and TOML files, and docs/theory.md's ``>>>`` examples as doctests, whose printed numbers
are the page's."""

import doctest
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.integration
@pytest.mark.timeout(660)
def test_readme_python_blocks_run(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) >= 3
    script = tmp_path / "readme.py"
    script.write_text("import torch\ntorch.set_num_threads(1)\n" + "\n".join(blocks))
    done = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_readme_toml_blocks_load():
    """Each TOML block is a RunConfig or, with a ``[base]`` table, a sweep spec whose points are
    valid RunConfigs."""
    from toolkit.runs import RunConfig
    from toolkit.sweeps import SweepSpec

    blocks = re.findall(r"```toml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    kinds = []
    for text in blocks:
        if "[base]" in text:
            assert len(SweepSpec.from_toml(text).points()) > 0
            kinds.append("sweep")
        else:
            assert isinstance(RunConfig.from_toml(text), RunConfig)
            kinds.append("run")
    assert {"run", "sweep"} <= set(kinds)


def test_theory_notes_examples_print_what_the_page_says():
    result = doctest.testfile(
        str(ROOT / "docs" / "theory.md"),
        module_relative=False,
        optionflags=doctest.NORMALIZE_WHITESPACE,
        verbose=False,
    )
    assert result.attempted >= 20
    assert result.failed == 0
