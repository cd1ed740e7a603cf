"""Certificates: x509 (make and read), rotation (the pure planner), secret (state <-> Secret), api (the API calls), manager (the reconcile loop), options, expiry (metrics)."""
