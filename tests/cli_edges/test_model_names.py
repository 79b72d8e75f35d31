"""A quote in a registered model's name neither breaks the MLflow search nor matches
another model (the filter is quoted for the name, never pasted in as is)."""

from __future__ import annotations

import pytest

from experiments.registry import list_versions, model_versions, name_filter
from experiments.tracking import ensure_store

#: Names with each kind of quote, both, a trailing backslash, and a decoy the LIKE form of
#: the name with both quotes would match (MLflow's "_" is any one character).
NAMES = {"edge-it's": 1, 'edge-say "hi"': 2, "edge-both ' and \"": 3, "edge-both x and y": 1,
         "edge-back\\": 2}


@pytest.fixture(scope="module")
def registered() -> dict[str, int]:
    client = ensure_store().client
    for name, versions in NAMES.items():
        if client.search_registered_models(name_filter(name)):  # a rerun in one session
            continue
        client.create_registered_model(name)
        for _ in range(versions):
            client.create_model_version(name, "file:///nowhere")
    return NAMES


@pytest.mark.parametrize("name", sorted(NAMES))
def test_every_version_of_a_quoted_name_and_no_other(registered: dict[str, int],
                                                     name: str) -> None:
    listed = list_versions(name)
    assert listed["version"].tolist() == list(range(1, registered[name] + 1))
    found = model_versions(ensure_store().client, name)
    assert {v.name for v in found} == {name} and len(found) == registered[name]


def test_the_filter_quotes_the_name_with_the_quote_it_lacks() -> None:
    assert name_filter("plain") == "name='plain'"
    assert name_filter("it's") == 'name="it\'s"'
    assert name_filter('say "hi"') == "name='say \"hi\"'"
    assert name_filter("both ' and \"") == "name LIKE 'both _ and \"'"
    assert name_filter("back\\") == "name LIKE 'back_'"
