"""Evaluate a trained model on eval data against thresholds and a baseline; write a blessing and a report."""
