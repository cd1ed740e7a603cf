"""Kubernetes quantities: read with the API server's own grammar, written back
exactly for pod specs, and shortly for people.

`kubernetes.utils.quantity.parse_quantity` is lenient where the API server is
not: it hands the number to Python's Decimal, which takes `NaN`, `Infinity`,
`1_000`, spaces and non-ASCII digits. A quantity the webhook copies into a pod
must pass the API server's validation, so the text is first matched against
the grammar of k8s.io/apimachinery's resource.Quantity, and only then parsed.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

from webhook.errors import QuantityError

# The grammar of resource.Quantity (k8s.io/apimachinery/pkg/api/resource), as
# in the OpenAPI pattern of quantity fields: ASCII digits, one optional suffix.
GRAMMAR = re.compile(
    r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:[KMGTPE]i|[numkMGTPE]|[eE][+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))?$",
    re.ASCII,
)
# The API server caps every quantity at 2^63-1 (it rounds larger ones down, so
# a pod would not get what it asked for); no model or memory size comes close.
MAX_VALUE = Decimal(2**63 - 1)
_MAX_TEXT = 64

_BINARY = (("Ei", 1024**6), ("Pi", 1024**5), ("Ti", 1024**4), ("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024))


def parse(text: object, what: str | None = None) -> Decimal:
    """TEXT's value; QuantityError naming WHAT, the text and the fix when the API
    server would not accept it, or it is negative or beyond 2^63-1."""
    at = f"{what}: " if what else ""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise QuantityError(f"{at}expected a Kubernetes quantity such as 16Gi or 500Mi, got {text!r}")
    raw = str(text)
    if len(raw) > _MAX_TEXT or not GRAMMAR.match(raw):
        shown = raw if len(raw) <= _MAX_TEXT else raw[:_MAX_TEXT] + "..."
        raise QuantityError(
            f'{at}"{shown}" is not a Kubernetes quantity; write a number with an optional suffix '
            "and no spaces, e.g. 16Gi, 500Mi or 2G"
        )
    from kubernetes.utils.quantity import parse_quantity  # deferred: it imports the whole client

    try:
        value = parse_quantity(raw)
    except (ValueError, ArithmeticError):
        raise QuantityError(f'{at}"{raw}" is not a Kubernetes quantity; write e.g. 16Gi, 500Mi or 2G') from None
    if value < 0:
        raise QuantityError(f'{at}"{raw}" is negative; sizes must be >= 0')
    if value > MAX_VALUE:
        raise QuantityError(f'{at}"{raw}" is larger than Kubernetes allows (2^63-1)')
    return value


def exact(value: Decimal | int) -> str:
    """VALUE as a quantity the API server reads back to the same number: the
    largest binary suffix that keeps it whole (16Gi, 16896Mi), else plain."""
    value = Decimal(value)
    if value == value.to_integral_value():
        for suffix, unit in _BINARY:
            if value >= unit and value % unit == 0:
                return f"{int(value // unit)}{suffix}"
        return str(int(value))
    # A fractional quantity (millibytes): only ever the sum of such inputs.
    return f"{int((value * 1000).to_integral_value(rounding='ROUND_CEILING'))}m"


def describe(value: Decimal | int | float, round_up: bool = False) -> str:
    """Bytes for people: binary suffix, at most one decimal (16Gi, 19.2Gi, 512Mi,
    900). ROUND_UP for what is needed (never understate it), down for what is there."""
    try:
        value = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        return str(value)
    for suffix, unit in _BINARY:
        if value >= unit:
            tenths = value * 10 / unit
            tenths = Decimal(math.ceil(tenths)) if round_up else Decimal(math.floor(tenths))
            return f"{tenths / 10:.1f}".removesuffix(".0") + suffix
    return str(int(value))
