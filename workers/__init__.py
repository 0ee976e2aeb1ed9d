"""Celery workers: app factory, task shims, GPU launcher, beat schedule."""
