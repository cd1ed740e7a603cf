"""What an S3 object is verified against, from its HeadObject response
(asked with ChecksumMode=ENABLED). Pure: the S3 calls are in s3.py.

1. A full-object checksum (CRC64NVME, CRC32C, CRC32, SHA256, SHA1), where
   this install computes it (CRC32C and CRC64NVME need awscrt). A
   multipart upload's COMPOSITE checksum (over the parts' checksums) is not
   one, nor a multipart checksum of no stated type.
2. Else the ETag, when it is an MD5: not under SSE-KMS or SSE-C, whose
   ETags are not digests of the data. A single-part upload's ETag is the
   object's MD5; a multipart upload's, `<md5 of the parts' md5s>-N`, is
   checked when the part size is known (part 1 and part N tell it).
3. Else nothing: the size only.
"""

from __future__ import annotations

import re
from typing import Mapping

from webhook.download.verify.checks import Check, from_base64

FULL_OBJECT_ALGORITHMS = ("CRC64NVME", "CRC32C", "CRC32", "SHA256", "SHA1")
_SINGLE_PART = re.compile(r"^[0-9a-f]{32}$")
_MULTIPART = re.compile(r"^[0-9a-f]{32}-(\d+)$")


def etag_of(head: Mapping) -> str:
    return (head.get("ETag") or "").strip('"').lower()


def multipart_count(etag: str) -> int | None:
    """N of a multipart upload's ETag, None for any other ETag."""
    m = _MULTIPART.match(etag)
    return int(m.group(1)) if m else None


def full_object_check(head: Mapping) -> Check | None:
    kind = head.get("ChecksumType")
    if kind == "COMPOSITE" or (kind is None and multipart_count(etag_of(head)) is not None):
        return None
    for name in FULL_OBJECT_ALGORITHMS:
        value = head.get(f"Checksum{name}")
        if value and "-" not in value:  # "<value>-N" is over parts
            check = from_base64(name.lower(), value, f"S3 Checksum{name}")
            if check is not None:
                return check
    return None


def etag_is_md5(head: Mapping) -> bool:
    return head.get("ServerSideEncryption") in (None, "AES256") and not head.get("SSECustomerAlgorithm")


def single_part_check(head: Mapping) -> Check | None:
    etag = etag_of(head)
    return Check("md5", etag, "S3 ETag") if etag_is_md5(head) and _SINGLE_PART.match(etag) else None


def part_size(size: int, parts: int, first: int, last: int) -> int | None:
    """The part size of a multipart upload of `size` bytes in `parts` parts
    whose first is `first` bytes and last `last` bytes, when they are
    consistent with equal parts (as every SDK's uploader makes them), else None."""
    if parts < 1 or first <= 0 or not 0 < last <= first:
        return None
    if parts == 1:
        return first if first == size else None
    return first if (parts - 1) * first + last == size else None


def multipart_check(head: Mapping, part: int) -> Check | None:
    etag = etag_of(head)
    if multipart_count(etag) is None or not etag_is_md5(head):
        return None
    return Check("md5", etag, "S3 multipart ETag", part_size=part)
