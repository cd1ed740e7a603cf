"""The fault rules of the fake API server: one engine for every misbehaviour a
test stages (a slow answer, a refusal, an error status, a connection that
hangs up before or halfway through its answer).

A rule matches a request by method (or any) and a regular expression searched
in the path; it acts on every match until healed, or on the next TIMES
matches only. For one request the first live rule of each action applies, so
two `times=1` rules for the same path act on two successive requests.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Literal

Action = Literal["delay", "status", "drop", "truncate"]


@dataclass
class Rule:
    pattern: re.Pattern[str]
    action: Action
    method: str | None = None  # None: every method
    seconds: float = 0.0  # for "delay"
    code: int = 0  # for "status"
    times: int | None = None  # None: until healed

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and self.pattern.search(path) is not None


class Faults:
    def __init__(self) -> None:
        self._rules: list[Rule] = []
        self._lock = threading.Lock()

    def add(self, path_regex: str, action: Action, *, method: str | None = None, seconds: float = 0.0,
            code: int = 0, times: int | None = None) -> Rule:
        rule = Rule(re.compile(path_regex), action, method, seconds, code, times)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def take(self, method: str, path: str) -> dict[Action, Rule]:
        """The rules that act on this request, by action; counted as used."""
        chosen: dict[Action, Rule] = {}
        with self._lock:
            for rule in self._rules:
                if rule.action in chosen or not rule.matches(method, path):
                    continue
                chosen[rule.action] = rule
                if rule.times is not None:
                    rule.times -= 1
            self._rules = [r for r in self._rules if r.times is None or r.times > 0]
        return chosen
