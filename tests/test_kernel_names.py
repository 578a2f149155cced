"""Names of datasets, versions and suites: validation and the first free variant of a name."""

from __future__ import annotations

import pytest

from kernel.errors import StudioError
from kernel.version_names import check_name, first_free_name


def test_first_free_name_skips_every_taken_variant():
    assert first_free_name("words", []) == "words"
    assert first_free_name("words", {"words"}) == "words-2"
    assert first_free_name("words", ["words", "words-2", "words-3"]) == "words-4"
    assert first_free_name("words", ["words-2"]) == "words"


@pytest.mark.parametrize("bad", ["", "x\n", "-x", "a b", "x" * 65])
def test_bad_names_are_refused_with_the_name(bad):
    with pytest.raises(StudioError, match="invalid dataset name"):
        check_name(bad, "dataset")
