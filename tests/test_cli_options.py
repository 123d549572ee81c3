"""Shared CLI option parsing: level lists."""

import pytest

from kyphosim.cli.options import level_ids_option, level_names_option
from kyphosim.errors import InputError


def test_level_lists_parse_to_ids_and_names():
    assert level_ids_option("T12-L2") == [19, 20, 21]
    assert level_names_option("L1,L3") == ["L1", "L3"]
    assert level_names_option(None) is None


def test_bad_level_list_names_the_option():
    with pytest.raises(InputError, match="--levels"):
        level_ids_option("Q9")
    with pytest.raises(InputError, match="--treat"):
        level_names_option("L9-", option="--treat")
