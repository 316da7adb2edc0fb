"""altmarl.settings.LISTS_AS_TUPLES / as_tuple: strict tuple fields that accept JSON lists."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import Field

from altmarl.settings import LISTS_AS_TUPLES, CheckedConfig, as_tuple


class _Grid(CheckedConfig):
    ks: Annotated[tuple[Annotated[int, Field(ge=1)], ...], LISTS_AS_TUPLES] = (1,)
    plain: tuple[int, ...] = ()


def test_as_tuple_converts_lists_only() -> None:
    assert as_tuple([1, 2]) == (1, 2) and isinstance(as_tuple([1]), tuple)
    assert as_tuple((1, 2)) == (1, 2)
    assert as_tuple("12") == "12" and as_tuple(3) == 3


def test_lists_accepted_and_elements_still_strict() -> None:
    assert _Grid(ks=[2, 3]).ks == (2, 3)
    assert _Grid.parse({"ks": [4]}).ks == (4,)
    with pytest.raises(ValueError, match=r"config: ks\.1: Input should be greater"):
        _Grid(ks=[2, 0])
    with pytest.raises(ValueError, match=r"config: ks\.0: Input should be a valid integer"):
        _Grid(ks=["2"])
    with pytest.raises(ValueError, match="config: plain: Input should be a valid tuple"):
        _Grid(plain=[1])  # without the annotation a strict tuple field refuses a list
