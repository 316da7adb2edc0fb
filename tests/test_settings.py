"""Validated configurations (altmarl.settings): the one pydantic style, dotted-key errors."""

from __future__ import annotations

from typing import Annotated, ClassVar

import numpy as np
import pytest
from pydantic import Field, ValidationError

from altmarl.settings import LISTS_AS_TUPLES, CheckedConfig, as_tuple, format_validation_errors


class Inner(CheckedConfig):
    config_source: ClassVar[str] = "inner"
    config_what: ClassVar[str] = "inner settings"

    rate: float = Field(default=0.5, gt=0)


class Outer(CheckedConfig):
    config_what: ClassVar[str] = "outer settings"

    count: int = Field(default=1, ge=1)
    inner: Inner = Field(default_factory=Inner)
    choice: int | list[int] = 3


def test_errors_name_dotted_keys_once() -> None:
    with pytest.raises(ValueError) as exc:
        Outer(count=0, inner={"rate": -1.0, "typo": 1})  # type: ignore[arg-type]
    msg = str(exc.value)
    assert msg.splitlines()[0] == "invalid outer settings:"
    assert "config: count: Input should be greater than or equal to 1 (got 0)" in msg
    assert "config: inner.rate: Input should be greater than 0 (got -1.0)" in msg
    assert "config: inner.typo: unknown key" in msg
    assert msg.count("invalid") == 1  # the nested model does not format its own message
    with pytest.raises(ValueError, match="inner: rate"):
        Inner(rate=0.0)


def test_strict_frozen_and_numpy_scalars() -> None:
    for bad in ({"count": "2"}, {"count": True}, {"count": 2.0}):
        with pytest.raises(ValueError, match="count"):
            Outer(**bad)  # type: ignore[arg-type]
    o = Outer(count=np.int64(4))  # type: ignore[arg-type]
    assert o.count == 4 and type(o.count) is int
    assert Inner(rate=2).rate == 2.0  # an int is a valid float
    with pytest.raises(ValidationError):
        o.count = 5  # type: ignore[misc]
    assert o == Outer(count=4) and hash(o) == hash(Outer(count=4))


def test_parse_and_union_alternatives() -> None:
    assert Outer.parse({"choice": [1, 2]}).choice == [1, 2]
    with pytest.raises(ValueError) as exc:
        Outer.parse({"choice": [1, "x"]}, source="file.json")
    lines = str(exc.value).splitlines()[1:]
    # only the alternative that got furthest (list[int] at index 1) is reported
    assert lines == ["  file.json: choice.1: Input should be a valid integer (got 'x')"]
    try:
        Outer.model_validate({"count": -1})
    except ValidationError as err:
        assert format_validation_errors(err, "x", "bad").startswith("invalid bad:\n  x: count: ")


def test_configs_serialize_as_their_fields() -> None:
    from altmarl.io import to_jsonable

    assert to_jsonable({"o": Outer(count=2)}) == {"o": {"count": 2, "inner": {"rate": 0.5},
                                                        "choice": 3}}


# --- LISTS_AS_TUPLES: strict tuple fields that accept JSON lists ---------------------


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
