"""The violation catalog: schema validation with clear errors, template expansion, versioning."""

from __future__ import annotations

import copy

import pytest
import yaml

from moderation.scoring.catalog import (
    MIN_PHRASINGS,
    CatalogError,
    catalog_from_mapping,
    default_catalog_text,
    expand_templates,
    load_catalog,
    parse_catalog,
)

REQUIRED = {
    "sexual",
    "graphic_violence",
    "weapons",
    "hate_symbols",
    "self_harm",
    "drugs",
    "extremist_propaganda",
    "shocking_disturbing",
}

BASE: dict = {
    "name": "t",
    "templates": ["a photo of {subject}", "{subject} in the image"],
    "categories": {
        "weapons": {"severity": 2, "subjects": ["a gun", "a knife"]},
        "drugs": {"severity": 1, "phrasings": ["pills", "a syringe", "powder", "a bong"]},
    },
}


def variant(**changes: object) -> dict:
    data = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = data
        for key in parents:
            node = node[key]
        if value is DELETE:
            del node[leaf]
        else:
            node[leaf] = value
    return data


DELETE = object()


def test_default_catalog_meets_the_brief():
    catalog = load_catalog()
    assert REQUIRED <= set(catalog.category_names)
    for category in catalog.categories:
        assert 1 <= category.severity <= 4
        assert len(category.phrasings) >= MIN_PHRASINGS
        assert len(set(category.phrasings)) == len(category.phrasings)
    weapons = next(c for c in catalog.categories if c.name == "weapons")
    # the seed's variant templates are applied to every subject
    assert {"a photo of a gun", "a detailed image showing a gun", "a gun in the image"} <= set(
        weapons.phrasings
    )
    assert len(catalog.version) == 64


def test_templates_expand_every_subject_literally():
    assert expand_templates(["a photo of {subject}", "{subject}!"], ["x {y}", "z"]) == [
        "a photo of x {y}",
        "x {y}!",
        "a photo of z",
        "z!",
    ]


def test_categories_sorted_and_pairs_grouped():
    catalog = catalog_from_mapping(BASE)
    assert catalog.category_names == ("drugs", "weapons")
    assert [c for c, _ in catalog.pairs()] == ["drugs"] * 4 + ["weapons"] * 4
    assert catalog.severities == {"drugs": 1, "weapons": 2}
    assert catalog.thresholds == {}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (variant(categories__weapons__severity=5), "categories.weapons.severity"),
        (variant(categories__weapons__severity=0), "greater than or equal to 1"),
        (variant(categories__weapons__severity=True), "categories.weapons.severity"),
        (variant(categories__weapons__severity="high"), "valid integer"),
        (variant(categories__weapons__subjects=["a gun"]), "at least 4 distinct phrasings"),
        (variant(categories__drugs__phrasings=["pills", "pills ", " pills", "a bong"]), "has 2"),
        (variant(categories__weapons__threshold=1.5), "categories.weapons.threshold"),
        (variant(categories__weapons__threshold=0), "categories.weapons.threshold"),
        (variant(categories__weapons__colour="red"), "Extra inputs are not permitted"),
        (variant(templates=["a photo of X"]), "exactly once"),
        (variant(templates=DELETE), "no templates"),
        (variant(categories={}), "categories"),
        (variant(categories__Weapons={"severity": 2, "subjects": ["a", "b"]}), "must match"),
        (variant(fusion={"query": 0.6, "keyword": 0.1}), "unknown fusion dimensions"),
        (variant(fusion={"query": 0.0}), "positive"),
        (variant(name=DELETE), "name: Field required"),
    ],
)
def test_invalid_catalogs_give_a_clear_error(data, message):
    with pytest.raises(CatalogError, match="my.yaml") as excinfo:
        catalog_from_mapping(data, source="my.yaml")
    assert message in str(excinfo.value)


@pytest.mark.parametrize("text", ["[1, 2]", "name: [unclosed", "", "just a string"])
def test_non_mapping_or_broken_yaml_is_rejected(text):
    with pytest.raises(CatalogError, match="x.yaml"):
        parse_catalog(text, source="x.yaml")


def test_load_catalog_reports_missing_and_directory(tmp_path):
    with pytest.raises(CatalogError, match="not found"):
        load_catalog(tmp_path / "nope.yaml")
    with pytest.raises(CatalogError, match="is a directory"):
        load_catalog(tmp_path)


def test_version_ignores_formatting_order_comments_and_descriptions():
    base = catalog_from_mapping(BASE)
    reordered = {
        "categories": dict(reversed(list(BASE["categories"].items()))),
        "templates": BASE["templates"],
        "name": "another name",
        "description": "cosmetic",
    }
    text = "# a comment\n" + yaml.safe_dump(reordered, sort_keys=False)
    text = text.replace("a gun", "a   gun")  # whitespace inside a phrasing is normalised
    assert parse_catalog(text).version == base.version


def test_version_does_not_care_whether_a_phrasing_came_from_a_template():
    literal = variant(categories__weapons={"severity": 2, "phrasings": [
        "a photo of a gun", "a gun in the image", "a photo of a knife", "a knife in the image",
    ]})  # fmt: skip
    assert catalog_from_mapping(literal).version == catalog_from_mapping(BASE).version


@pytest.mark.parametrize(
    "change",
    [
        {"categories__weapons__severity": 3},
        {"categories__weapons__threshold": 0.25},
        {"categories__weapons__subjects": ["a gun", "a rifle"]},
        {"templates": ["a photo of {subject}", "{subject} in the picture"]},
        {"fusion": {"query": 0.6, "corpus": 0.3}},
    ],
)
def test_version_changes_with_anything_that_changes_scores(change):
    assert catalog_from_mapping(variant(**change)).version != catalog_from_mapping(BASE).version


def test_thresholds_and_fusion_are_parsed():
    catalog = catalog_from_mapping(
        variant(categories__weapons__threshold=0.21, fusion={"query": 0.6, "corpus": 0.3})
    )
    assert catalog.thresholds == {"weapons": 0.21}
    assert catalog.fusion == {"query": 0.6, "corpus": 0.3}


def test_packaged_text_round_trips():
    assert parse_catalog(default_catalog_text()).version == load_catalog().version
