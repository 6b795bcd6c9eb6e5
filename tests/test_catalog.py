"""Every check is documented like a linter rule, and the README's table matches the registry."""

from __future__ import annotations

import json
import re

import pytest
from conftest import ROOT

from babysit import registry
from babysit.check import Check, Severity

CHECKS = registry.all_checks()


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.id)
def test_check_is_documented_like_a_linter_rule(check: type[Check]):
    assert re.fullmatch(r"BS\d{3}", check.id)
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", check.name)
    assert isinstance(check.severity, Severity)
    assert check.summary and not check.summary.endswith(".")
    sections = check.doc_sections()
    assert list(sections) == list(Check.DOC_SECTIONS), check.id
    assert all(text.strip() for text in sections.values()), check.id
    json.dumps(dict(check.thresholds))  # thresholds are JSON-able defaults
    for key in check.thresholds:
        assert f"`{key}`" in sections["Thresholds"], f"{check.id}: threshold {key} undocumented"


def test_ids_and_names_are_unique():
    assert len({c.id for c in CHECKS}) == len(CHECKS)
    assert len({c.name for c in CHECKS}) == len(CHECKS)


def test_the_public_contract_names_exist():
    names = {c.name for c in CHECKS}
    assert {
        "loss-at-init-not-chance",
        "activation-variance-unstable",
        "unnormalized-inputs",
        "batchnorm-batch-size-one",
    } <= names


def test_readme_catalog_table_is_in_sync_with_the_registry():
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- catalog:start[^>]*-->\n(.*?)\n<!-- catalog:end -->", readme, re.S)
    assert match, "README lost its catalog markers"
    assert match.group(1).strip() == registry.catalog_markdown().strip(), (
        "README catalog is stale: paste `babysit checks --format markdown` between the markers"
    )


def test_selectors():
    assert [c.id for c in registry.select("BS10")] == [
        "BS101",
        "BS102",
        "BS103",
        "BS104",
        "BS105",
        "BS106",
    ]
    assert [c.name for c in registry.select(["unnormalized-inputs"])] == ["unnormalized-inputs"]
    assert "BS201" not in {c.id for c in registry.select(ignore="BS2")}
    from babysit.errors import BabysitError

    with pytest.raises(BabysitError, match="matches no check"):
        registry.select("BS7")
