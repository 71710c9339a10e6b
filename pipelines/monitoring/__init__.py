"""Monitoring pipelines."""
