"""TFDV data validation: statistics, schema (curated or inferred), anomalies, drift and skew, offline reports."""
