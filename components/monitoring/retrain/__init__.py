"""The retrain trigger: the monitor decided to retrain -> the training pipeline runs with the new data."""
