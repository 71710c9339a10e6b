"""Monitoring: the payload-log collector (served traffic as Parquet batches) and the monitor of drift and skew."""
