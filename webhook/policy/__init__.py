"""Policy files: schema (the pydantic models), files (reading one), check
(`policy check`: each file and the files together),
resolved (defaults merged, a model as a namespace sees it), store (the
policies in force, reloaded)."""

from webhook.policy.check import check_paths, check_texts
from webhook.policy.files import parse_policy, policy_problems
from webhook.policy.resolved import ResolvedModel, merge_defaults
from webhook.policy.store import PolicyStore

__all__ = ["PolicyStore", "ResolvedModel", "check_paths", "check_texts", "merge_defaults", "parse_policy", "policy_problems"]
