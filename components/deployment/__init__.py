"""Deployment components: render, deploy, promote and roll back a KServe InferenceService; the model server."""
