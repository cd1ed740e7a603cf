"""The JSON patch the webhook returns: jsonpatch on the parts that differ."""

from __future__ import annotations

import copy
import random
from typing import Any

import jsonpatch
import pytest

from webhook.admission.patch import json_patch


@pytest.mark.parametrize(
    ("before", "after", "ops"),
    [
        ([1, 2], [0, 1, 2], [{"op": "add", "path": "/0", "value": 0}]),
        ([1, 2], [1, 9, 2, 8], [{"op": "add", "path": "/1", "value": 9}, {"op": "add", "path": "/3", "value": 8}]),
        ({"a": {}}, {"a": {"model.cache/injected": "x"}}, [{"op": "add", "path": "/a/model.cache~1injected", "value": "x"}]),
        ({"m": "8Gi"}, {"m": "9Gi"}, [{"op": "replace", "path": "/m", "value": "9Gi"}]),
    ],
)
def test_small_patches_are_minimal(before: Any, after: Any, ops: list[dict[str, Any]]) -> None:
    assert json_patch(before, after) == ops


def _random_value(rng: random.Random, depth: int) -> Any:
    if depth > 2 or rng.random() < 0.4:
        return rng.choice([rng.randint(0, 5), f"s{rng.randint(0, 5)}", None, True])
    if rng.random() < 0.5:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(["a", "b/c", "d~e", "f"]): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def _random_edit(rng: random.Random, value: Any, depth: int = 0) -> Any:
    if isinstance(value, dict) and value and rng.random() < 0.7:
        key = rng.choice(list(value))
        if rng.random() < 0.2:
            del value[key]
        else:
            value[key] = _random_edit(rng, value[key], depth + 1)
        if rng.random() < 0.3:
            value[rng.choice(["g", "h/i"])] = _random_value(rng, depth)
        return value
    if isinstance(value, list) and rng.random() < 0.7:
        choice = rng.random()
        if choice < 0.4:
            value.insert(rng.randint(0, len(value)), _random_value(rng, depth))
        elif choice < 0.6 and value:
            value.pop(rng.randrange(len(value)))
        elif value:
            i = rng.randrange(len(value))
            value[i] = _random_edit(rng, value[i], depth + 1)
        return value
    return _random_value(rng, depth)


def test_patch_applies_to_give_the_target_on_random_documents() -> None:
    rng = random.Random(20261123)
    for _ in range(2000):
        before = {"root": _random_value(rng, 0)}
        after = copy.deepcopy(before)
        for _ in range(rng.randint(1, 4)):
            after = _random_edit(rng, after)
        patch = json_patch(before, after)
        assert jsonpatch.apply_patch(before, patch) == after, (before, after, patch)
