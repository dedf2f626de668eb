"""The errors a user can cause, each carrying the message the CLI prints.

``UserError`` (bad input: config, paths, names) makes the CLI exit 2; ``RunError`` (a run
that started and failed) exits 1. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Sequence


class PrunetuneError(Exception):
    exit_code = 1


class UserError(PrunetuneError):
    exit_code = 2


class RunError(PrunetuneError):
    exit_code = 1


class ConfigError(UserError):
    """One or more invalid config fields; ``problems`` holds (field path, message) pairs."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = list(problems)
        lines = [f"{path}: {message}" if path else message for path, message in self.problems]
        header = "invalid config:" if len(lines) > 1 else "invalid config"
        super().__init__(header + ("\n  " + "\n  ".join(lines) if len(lines) > 1 else f" - {lines[0]}"))


class UnknownNameError(UserError, ValueError):
    # Also a ValueError so that pydantic validators turn it into a field error.
    def __init__(self, kind: str, name: str, known: Sequence[str], field: str | None = None) -> None:
        self.kind, self.name, self.known = kind, name, list(known)
        where = f"{field}: " if field else ""
        super().__init__(f"{where}unknown {kind} {name!r}; known: {', '.join(known)}")


class FieldValueError(UserError, ValueError):
    """A value a section's validator refuses. ``field`` names it inside the section, so the
    loader reports its whole path (``data.crop_padding``); a ValueError, so pydantic turns it
    into a field error."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


class DataError(UserError):
    pass


class ModelError(UserError):
    pass


class UnknownModelError(ModelError, ValueError):
    # Also a ValueError so that the model.name validator turns it into a field error.
    pass
