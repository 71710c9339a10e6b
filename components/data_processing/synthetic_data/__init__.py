"""Seeded generator of the bundled default dataset (customer churn) and its drifted variant."""
