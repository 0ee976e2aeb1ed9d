"""The upload hook API (FastAPI): submit images, read results, health probes."""
