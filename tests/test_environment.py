"""environment.yml (conda) and pyproject.toml (pip) must list the same dependencies.

No conda channel is reachable on the CI machines, so the conda file cannot be solved here; this
test keeps it honest by comparing the two lists (conda names pytorch what pip names torch).
"""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONDA_TO_PIP = {"pytorch": "torch"}
CONDA_ONLY = {"python", "pip", "jupyter"}  # the interpreter, the installer, the notebook front end


def _name(spec: str) -> str:
    return re.split(r"[<>=!~ \[]", spec.strip(), maxsplit=1)[0].lower()


def _conda_names() -> set[str]:
    text = (ROOT / "environment.yml").read_text().split("dependencies:", 1)[1]
    names = set()
    for raw in text.splitlines():
        item = raw.split("#")[0].strip()
        if not item.startswith("- ") or item in ("- pip:",) or item[2:].startswith(("-e", ".")):
            continue
        names.add(CONDA_TO_PIP.get(_name(item[2:]), _name(item[2:])))
    return names - CONDA_ONLY


def test_environment_yml_matches_pyproject():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pip_names = {_name(d) for d in deps}
    conda_names = _conda_names()
    assert conda_names == pip_names, (
        f"only in environment.yml: {sorted(conda_names - pip_names)}; "
        f"only in pyproject.toml: {sorted(pip_names - conda_names)}"
    )


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make test" in ci


def test_environment_yml_installs_the_paper_tools():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert {"jupytext", "typst", "pypdf"} <= {_name(d) for d in extras["paper"]}
    assert "-e .[paper]" in (ROOT / "environment.yml").read_text()
