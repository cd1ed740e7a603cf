"""The size budget of an unpacked archive: the members' apparent sizes
(a sparse member counts whole, holes included) may add up to the policy's
`size` plus SLACK_PERCENT, and no more. Charged before a member is
written, so a bomb stops before its first byte past the budget."""

from __future__ import annotations

from webhook.download.errors import ArchiveTooLarge
from webhook.download.volume.space import POLICY_FIELD
from webhook.quantity import describe as format_bytes

SLACK_PERCENT = 5  # a size written in G for a model measured in Gi, rounding


def budget_for(size: int) -> int:
    return size + size * SLACK_PERCENT // 100


class Budget:
    """LIMIT bytes for the contents of MODEL's archive; None: no limit
    (the command run by hand without --size)."""

    def __init__(self, size: int | None, model: str) -> None:
        self.size, self.model = size, model
        self.limit = budget_for(size) if size is not None else None
        self.used = 0

    def charge(self, n: int, name: str) -> None:
        self.used += n
        if self.limit is not None and self.used > self.limit:
            assert self.size is not None
            raise ArchiveTooLarge(
                f"the archive of model {self.model} unpacks to more than its budget of {format_bytes(self.limit, round_up=True)} "
                f"(the policy's `{POLICY_FIELD}` {format_bytes(self.size)} + {SLACK_PERCENT}%): "
                f"{name} would bring it to {format_bytes(self.used, round_up=True)} (apparent size, sparse members counted whole); "
                f"nothing was published; if the archive is right, raise the model's `{POLICY_FIELD}` in the policy")
