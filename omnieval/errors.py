"""User-facing errors.

Every error a user can cause (bad names, bad YAML, missing files or weights, bad media) is an
:class:`OmniEvalError`.  The CLI prints its one-line message and exits with status 2; nothing
already written is touched.
"""
from __future__ import annotations

import difflib


class OmniEvalError(Exception):
    """An error caused by input or environment, reported as one line (exit status 2)."""

    exit_code = 2


class UnknownNameError(OmniEvalError, KeyError):
    def __init__(self, kind: str, name: str, known: list[str]):
        self.kind, self.name = kind, name
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(known) or '(none)'}"
        super().__init__(f"unknown {kind} {name!r}{hint}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class ConfigError(OmniEvalError, ValueError):
    """A malformed or invalid task/run configuration (names the file and key)."""


class MissingWeightsError(OmniEvalError, FileNotFoundError):
    """A model or metric checkpoint is not available locally (names the file or hub id)."""


class MediaError(OmniEvalError, ValueError):
    """Corrupt, missing or wrongly shaped media (names the item)."""


class CapabilityError(OmniEvalError, TypeError):
    """The model lacks a capability the task needs."""
