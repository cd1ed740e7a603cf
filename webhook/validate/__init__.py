"""The validating half: usage (what a pod does
with the cache), rules (pure: warnings and denials), warnings (Kubernetes'
limits), review (the orchestration), policy_configmap, lookups (the API server,
cached: the only part that talks to the cluster; lookup_config its settings)."""
