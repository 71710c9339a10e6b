"""Tests for kfp-tabular."""
