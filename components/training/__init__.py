"""Training components: fit a scikit-learn model on validated tabular data."""
