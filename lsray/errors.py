"""The errors lsray reports to users.

Every failure a user can act on (a bad input file, a missing weight, an invalid config) is a
subclass of :class:`LsrayError`, so the CLI, the batch report and the HTTP API can turn it into a
clear message without catching unrelated bugs.
"""

from __future__ import annotations

from pathlib import Path


class LsrayError(Exception):
    """Base class of errors caused by inputs, configuration or missing files."""


class MissingWeightError(LsrayError, FileNotFoundError):
    """A model file that must exist locally is absent (nothing is ever downloaded)."""

    def __init__(self, path: str | Path, what: str = "model file") -> None:
        self.path = str(path)
        super().__init__(f"missing {what}: expected {self.path}")


class CheckpointMismatchError(LsrayError):
    """A checkpoint's keys or shapes do not match the architecture it is loaded into."""


class BundleError(LsrayError):
    """A model bundle is unreadable or inconsistent."""


class MediaError(LsrayError):
    """A media input is missing, unreadable or unsupported; names the file and the problem."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message``, for a report or a job record (Ray's errors carry
    whole remote tracebacks)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
