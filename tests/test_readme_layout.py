"""The README as a new user reads it: the two commands first, a table of contents that
reaches every section, `api_url`'s `/v1/public` suffix where the setting is first named,
and what only contributors need kept in docs/."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_two_commands_come_first_then_the_contents() -> None:
    headings = re.findall(r"^## (.+)$", README, re.M)
    assert headings[:2] == ["The two commands", "Contents"]
    first = README[README.index("## The two commands") : README.index("## Contents")]
    assert re.search(r"^make demo ", first, re.M) and re.search(r"^make test ", first, re.M)


def test_the_contents_link_every_section_by_its_anchor() -> None:
    contents = README[
        README.index("## Contents") : README.index("\n## ", README.index("## Contents") + 1)
    ]
    links = re.findall(r"\]\(#([^)]+)\)", contents)
    sections = re.findall(r"^###? (.+)$", README, re.M)
    expected = [anchor(h) for h in sections if h not in ("The two commands", "Contents")]
    assert links == expected


def test_api_url_says_its_suffix_where_it_is_first_named() -> None:
    first = README.index("`api_url`")
    paragraph = README[README.rindex("\n\n", 0, first) : README.index("\n\n", first)]
    assert "/v1/public" in paragraph
    assert "404" in paragraph


def test_contributor_material_lives_in_docs() -> None:
    assert "/_control/" not in README  # the stand-in's control endpoints
    assert "pwrite" not in README and "B-tree" not in README  # the throughput internals
    for linked in re.findall(r"\]\((docs/[^)#]+)", README):
        assert (ROOT / linked).is_file(), linked
    assert "/_control/requests" in (ROOT / "docs/standin.md").read_text()
    assert "pwrite" in (ROOT / "docs/throughput.md").read_text()


def test_a_changed_invoice_is_never_called_already_present() -> None:
    # the changes section reports a changed invoice as "changed, not updatable"; no other
    # sentence may call such an invoice already present
    for sentence in re.split(r"(?<=[.:;])\s", " ".join(README.split())):
        if "changed version" in sentence or "changed invoice" in sentence:
            assert "already present" not in sentence.split("unchanged")[0], sentence
