"""Promote a KServe canary: the latest model takes 100% of the traffic."""
