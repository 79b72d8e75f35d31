"""Batch jobs that compute reusable data products into the store."""
