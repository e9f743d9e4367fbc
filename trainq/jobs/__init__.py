"""The domain: what a job is (spec, record, status, failure classes), the progress
protocol its program speaks, where it is routed, and what this cluster allows.

Nothing here talks to Redis, Docker or Celery: every other package builds on it.
"""
