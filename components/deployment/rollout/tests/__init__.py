"""Tests of the rollout engine package (no cluster: in-memory backend and reader; a real Prometheus)."""
