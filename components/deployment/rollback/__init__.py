"""Roll a KServe InferenceService back to the previous model."""
