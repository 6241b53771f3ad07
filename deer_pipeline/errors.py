"""Errors that carry a one-line message meant for the user.

The CLI prints a ``DeerError`` as a single line and exits non-zero instead of showing a traceback;
anything else is a bug and keeps its traceback.
"""


class DeerError(Exception):
    """A problem the user can fix (configuration, environment, input); the message says how."""


class DatabaseUnavailable(DeerError):
    """The configured PostgreSQL server cannot be reached or lacks something we need."""


class MigrationError(DeerError):
    """The database schema history does not match the migration files."""
