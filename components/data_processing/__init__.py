"""Data processing components: synthetic data, ingest, TFDV validation."""
