"""Deploy a blessed model as a KServe InferenceService: render, create, canary, with automatic rollback."""
