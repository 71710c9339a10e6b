"""ingest -> validate (TFDV) -> train (scikit-learn) -> evaluate (blessing) -> deploy (KServe canary)."""
