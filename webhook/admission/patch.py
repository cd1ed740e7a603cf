"""The JSON patch from the pod the API server sent to the pod we want, by
jsonpatch, computed only where the two differ."""

from __future__ import annotations

from typing import Any

import jsonpatch
from jsonpointer import escape as escape_pointer


def json_patch(before: Any, after: Any, path: str = "") -> list[dict[str, Any]]:
    """The JSON patch from BEFORE to AFTER, by jsonpatch, computed only where they differ.

    jsonpatch diffs whole documents and looks for moves, which costs about half a
    millisecond on a pod; equal subtrees (most of a pod) are skipped here by a
    C-level `==` first, and jsonpatch diffs only what changed.
    """
    if before == after:
        return []
    if isinstance(before, dict) and isinstance(after, dict) and before.keys() <= after.keys():
        ops: list[dict[str, Any]] = []
        for key, value in after.items():
            child = f"{path}/{escape_pointer(str(key))}"
            if key not in before:
                ops.append({"op": "add", "path": child, "value": value})
            else:
                ops.extend(json_patch(before[key], value, child))
        return ops
    if isinstance(before, list) and isinstance(after, list):
        if len(before) == len(after):
            return [op for i, (b, a) in enumerate(zip(before, after)) for op in json_patch(b, a, f"{path}/{i}")]
        inserted = _insertions(before, after)
        if inserted is not None:
            # Ascending final positions: each add lands where it ends up.
            return [{"op": "add", "path": f"{path}/{i}", "value": after[i]} for i in inserted]
    ops = jsonpatch.make_patch(before, after).patch
    for op in ops:
        op["path"] = path + op["path"]
        if "from" in op:
            op["from"] = path + op["from"]
    return ops


def _insertions(before: list[Any], after: list[Any]) -> list[int] | None:
    """Indexes of AFTER's items that were inserted into BEFORE, when that is all
    that happened (the usual case: a container, volume or env var added);
    None otherwise, and jsonpatch works the difference out."""
    if len(after) <= len(before):
        return None
    inserted, j = [], 0
    for i, item in enumerate(after):
        if j < len(before) and item == before[j]:
            j += 1
        else:
            inserted.append(i)
    return inserted if j == len(before) else None
