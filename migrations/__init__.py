"""The Alembic migrations, installed with the package as ``service.store.migrations``."""
