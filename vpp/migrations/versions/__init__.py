"""Alembic revisions of the store, oldest first (``r<revision>_<what>.py``)."""
