"""Policy files: schema (the pydantic models), files (reading and checking),
resolved (defaults merged, a model as a namespace sees it), store (the
policies in force, reloaded)."""

from webhook.policy.files import check_directory, parse_policy, policy_problems
from webhook.policy.resolved import ResolvedModel, merge_defaults
from webhook.policy.store import PolicyStore

__all__ = ["PolicyStore", "ResolvedModel", "check_directory", "merge_defaults", "parse_policy", "policy_problems"]
