"""webhook/quantity.py: the API server's grammar, exact and short formatting."""

from __future__ import annotations

from decimal import Decimal

import pytest
from kubernetes.utils.quantity import parse_quantity

from webhook import quantity
from webhook.errors import QuantityError


@pytest.mark.parametrize("text", ["16Gi", "500Mi", "2G", "0", "1.5Gi", ".5Gi", "1e3", "1E+3", "100m", "+1Ki", "12345"])
def test_accepts_what_the_api_server_accepts(text: str) -> None:
    assert quantity.parse(text) == parse_quantity(text)


@pytest.mark.parametrize(
    "text",
    ["NaN", "sNaN", "Infinity", "-Infinity", "inf", "1 Gi", "16 Gi", " 1Gi", "1Gi ", "1_000Mi", "1e9999999999Gi",
     "1e400Gi", "١٢Gi", "１Gi", "1gi", "1GB", "Gi", "", "1..2", "0x10", "1e", "1Gi\n"],
)
def test_rejects_what_the_api_server_rejects(text: str) -> None:
    with pytest.raises(QuantityError, match="not a Kubernetes quantity"):
        quantity.parse(text)


def test_rejects_negative_huge_and_non_strings_with_the_reason() -> None:
    with pytest.raises(QuantityError, match="negative"):
        quantity.parse("-1Gi")
    with pytest.raises(QuantityError, match=r"larger than Kubernetes allows"):
        quantity.parse("1e400")
    with pytest.raises(QuantityError, match="expected a Kubernetes quantity"):
        quantity.parse(True)
    with pytest.raises(QuantityError, match=r"^shmSize: "):
        quantity.parse([1], "shmSize")


def test_exact_keeps_whole_units_and_round_trips() -> None:
    assert quantity.exact(parse_quantity("16Gi")) == "16Gi"
    assert quantity.exact(parse_quantity("16Gi") + parse_quantity("512Mi")) == "16896Mi"
    assert quantity.exact(parse_quantity("1G")) == "1000000000"
    for text in ("16Gi", "1.5Gi", "1G", "300m", "7"):
        value = parse_quantity(text)
        assert parse_quantity(quantity.exact(value)) == value
        assert quantity.GRAMMAR.match(quantity.exact(value))


@pytest.mark.parametrize(
    ("value", "up", "expected"),
    [(Decimal(16 * 1024**3), False, "16Gi"), (Decimal("20615843021"), True, "19.3Gi"),
     (Decimal("20615843021"), False, "19.2Gi"), (Decimal(512 * 1024**2), False, "512Mi"), (Decimal(900), False, "900")],
)
def test_describe_is_short_and_rounds_the_stated_way(value: Decimal, up: bool, expected: str) -> None:
    assert quantity.describe(value, round_up=up) == expected


@pytest.mark.parametrize(("value", "up", "expected"), [
    (Decimal(16 * 2**30), False, "16Gi"), (Decimal(16 * 2**30) * Decimal("1.2"), True, "19.2Gi"),
    (Decimal(2**30 - 1), False, "1023.9Mi"), (Decimal(2**30 + 1), True, "1.1Gi"), (Decimal(512), False, "512"),
    (Decimal(3 * 2**40), False, "3Ti"),
])
def test_describe_boundaries(value: Decimal, up: bool, expected: str) -> None:
    assert quantity.describe(value, round_up=up) == expected
