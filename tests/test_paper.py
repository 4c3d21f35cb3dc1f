"""The manuscript's sources (paper/paper.typ as the build compiles it, with paper/references.yml):
every listed work is cited and every citation names a listed work."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PAPER = Path(__file__).resolve().parents[1] / "paper"


def listed() -> set[str]:
    """The entries of references.yml (its top-level keys)."""
    text = (PAPER / "references.yml").read_text()
    return set(re.findall(r"^([A-Za-z][\w-]*):\s*$", text, flags=re.MULTILINE))


def cited(text: str) -> set[str]:
    """Typst citations: ``@key`` (optionally ``@key[supplement]``) and ``#cite(<key>)``; an
    ``@name`` that refers to a label the document defines (``<name>``) is a cross-reference, not a
    citation. Comments (``//`` to the end of the line) are skipped."""
    text = re.sub(r"(?m)(^|\s)//.*$", r"\1", text)
    labels = set(re.findall(r"(?<!cite\()<([A-Za-z][\w:.-]*)>", text))
    keys = set(re.findall(r"(?<![\w@./])@([A-Za-z][\w-]*)", text))
    keys |= set(re.findall(r"#cite\(\s*<([A-Za-z][\w-]*)>", text))
    return keys - labels


def test_every_listed_work_is_cited_and_every_citation_is_listed():
    source = (PAPER / "paper.typ").read_text()
    refs, cites = listed(), cited(source)
    assert refs, "references.yml lists no work"
    assert cites <= refs, f"cited but not listed in references.yml: {sorted(cites - refs)}"
    assert refs <= cites, f"listed in references.yml but never cited: {sorted(refs - cites)}"
    # the bibliography the manuscript prints is that file
    assert re.search(r'#bibliography\("references.yml"', source)


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        ("as shown @chen2016[Fig. 2] and @lian2015.", {"chen2016", "lian2015"}),
        ("#cite(<dutta2018>) // @commented", {"dutta2018"}),
        ("see @fig-a. #figure([x]) <fig-a>", set()),
        ("mail a@b.org", set()),
    ],
)
def test_citation_parser(text, keys):
    assert cited(text) == keys
