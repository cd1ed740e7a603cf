"""An origin's own checksum of a file, from its response headers:
`Repr-Digest` (RFC 9530: `sha-256=:BASE64:`, a structured-field dictionary)
or the older `Digest` (RFC 3230: `SHA-256=BASE64`). Both describe the whole
representation, whatever range a response carries, so a HEAD tells it.
sha-256 and sha-512 are used; weaker or unknown algorithms are ignored."""

from __future__ import annotations

from typing import Mapping

from webhook.download.verify.checks import Check, from_base64

# The HTTP Digest Algorithm Values registry's names, lowercase -> ours.
_ALGORITHMS = {"sha-256": "sha256", "sha-512": "sha512"}


def _members(value: str) -> list[tuple[str, str]]:
    """`name=value` pairs of a comma-separated header (parameters after `;` dropped)."""
    out = []
    for member in value.split(","):
        name, sep, rest = member.strip().partition("=")
        if sep:
            out.append((name.strip().lower(), rest.split(";", 1)[0].strip()))
    return out


def _first(pairs: list[tuple[str, str]], header: str, unwrap: bool) -> Check | None:
    for name in _ALGORITHMS:
        for got, value in pairs:
            if got != name:
                continue
            if unwrap:  # a structured-field byte sequence is :base64:
                if not (len(value) >= 2 and value.startswith(":") and value.endswith(":")):
                    continue
                value = value[1:-1]
            check = from_base64(_ALGORITHMS[name], value, header)
            if check is not None:
                return check
    return None


def digest_check(headers: Mapping[str, str]) -> Check | None:
    """The Check an origin's digest header gives, Repr-Digest first; None
    when it sends neither or nothing usable."""
    repr_digest = headers.get("Repr-Digest")
    if repr_digest:
        check = _first(_members(repr_digest), "Repr-Digest", unwrap=True)
        if check is not None:
            return check
    digest = headers.get("Digest")
    if digest:
        return _first(_members(digest), "Digest", unwrap=False)
    return None
