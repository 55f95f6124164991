"""Alembic migrations of the job database; run by ``tunesmith.jobs.store.migrate``."""
