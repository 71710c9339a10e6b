"""Evaluation components: score a model on held-out data and decide whether it is blessed."""
