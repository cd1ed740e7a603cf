"""The validating rules: rules (pure: warnings and denials on a pod the
mutation gave), memory_caps (a namespace's memory bounds), warnings
(Kubernetes' limits on them), outcome (what /validate answers),
policy_configmap (a policy ConfigMap's review), lookups (the API server,
cached: the only part that talks to the cluster; lookup_config its settings).
admission/validating.py runs them."""
