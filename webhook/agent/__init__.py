"""The node agent (`model-cache agent`), one per node that runs hostpath pods:
it prepares the node's cache for the downloader's user, publishes what the
node holds on its Node (webhook/inventory.py), keeps the policy's prewarmed
models there, and evicts the least recently used ones under a quota. It uses
download/ and kube.py; nothing in the admission path imports it."""
