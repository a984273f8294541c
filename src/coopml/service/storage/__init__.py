"""Persistence: SQLAlchemy models, the engine and migrations, the encrypted blob store."""

from coopml.service.storage.blobs import BlobStore
from coopml.service.storage.database import Database, migrate

__all__ = ["BlobStore", "Database", "migrate"]
