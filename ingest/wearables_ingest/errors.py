"""The package's errors: one base class, and each error carries its context.

Every message is one line that names what it is about (a file and line, a
setting, the database's address without its password), so the CLI can print
it as it is.
"""

from __future__ import annotations


class IngestError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(IngestError):
    """A setting has a value the loader cannot use."""


class SourceError(IngestError):
    """A file-level problem: the message names the file (and the line, where there is one)."""


class CheckpointError(IngestError):
    """The checkpoint, its lock or a file beside it cannot be used."""


class LockedError(CheckpointError):
    """Another run holds the lock beside the checkpoint."""


class DatabaseError(IngestError):
    """The database cannot be reached or refused the work."""


class ConnectionLost(DatabaseError):
    """The connection failed or broke; what was not committed can be sent again."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason  # the driver's first line, without the target


class RowsRefused(DatabaseError):
    """The server refused rows of one write (a key already present, a value it cannot read).

    The transaction was rolled back; a more careful way of writing may succeed.
    """
