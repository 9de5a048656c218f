"""Errors written for people: what happened, where, and what to do about it.

The command-line entry points print an `NmtError` as one line and exit with status 2;
anything else is a bug and keeps its traceback.
"""


class NmtError(Exception):
    """Base class of every error a user can cause and fix."""


class DataError(NmtError):
    """A corpus file is missing, unreadable, misaligned or malformed."""


class ConfigError(NmtError):
    """A configuration value is invalid or inconsistent with another."""


class RunDirError(NmtError):
    """A run directory is missing or lacks what it should hold."""


class DivergedError(NmtError):
    """Training produced non-finite losses or gradients too many updates in a row."""


class DistributedError(NmtError):
    """Another process of a multi-process job failed or stopped answering."""


class DiskFullError(RunDirError, OSError):
    """A file could not be written because its file system is full (or the quota is spent).

    Also an OSError (errno, strerror, filename), for callers that handle failed writes."""

    def __init__(self, message: str, errno: int, strerror: str, filename: str) -> None:
        super().__init__(errno, strerror, filename)
        self.message = message

    def __str__(self) -> str:
        return self.message


class DecodeMemoryError(ConfigError):
    """Decoding ran out of memory even one sentence at a time: the decode settings (beam
    size, length limit) ask for more than the device has."""
