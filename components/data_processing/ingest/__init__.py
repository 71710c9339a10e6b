"""Ingest: read a CSV or Parquet table from a path or URL, check it, and split it into train and eval Parquet."""
