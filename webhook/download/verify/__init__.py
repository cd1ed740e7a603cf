"""Verifying bytes: what a file is checked against (sha256, an origin's own
digest, or its size) and the hashers that compute it while the bytes arrive."""
