"""Experiment tracking: MLflow runs, pyfunc scoring models and replay-gated promotion."""
