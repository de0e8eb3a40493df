"""One error base for the whole project, so the CLI can map every failure to one readable line."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "InputFileError",
    "InvalidEvent",
    "InvalidModel",
    "PersonaError",
    "ServiceRefused",
    "ServiceUnavailable",
    "StackError",
    "Stopping",
]


class PersonaError(Exception):
    """Base of every error we raise on purpose; ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class ConfigError(PersonaError):
    """A setting or option has a value we cannot work with."""

    exit_code = 2


class InputFileError(PersonaError):
    """A file given by the user is missing, unreadable or malformed."""

    exit_code = 2


class ServiceUnavailable(PersonaError):
    """A service we depend on does not answer, refuses us or is misconfigured; the message names
    it, its address, what happened and the fix."""

    exit_code = 3

    def __init__(self, service: str, address: str, reason: str = "", hint: str = "") -> None:
        self.service = service
        self.address = address
        self.reason = reason
        self.hint = hint
        text = (
            f"{service} at {address}: {reason}"
            if reason
            else f"{service} at {address} is not reachable"
        )
        if hint:
            text += f" ({hint})"
        super().__init__(text)


class ServiceRefused(ServiceUnavailable):
    """A service answered and refused the request in a way no retry changes (credentials,
    permissions, a request it will never accept). Still a ServiceUnavailable for the CLI (same
    line, same exit code) and for the long-running services, which keep reporting it until an
    operator fixes it; a job that would otherwise retry it forever (the trainer's command) fails
    instead, with the reason."""


class Stopping(PersonaError):
    """The service was asked to stop while work waited on a dependency: the work is left
    unfinished and uncommitted, for the next run to do (never recorded as done or as failed)."""


class StackError(PersonaError):
    """The local stack could not be started, stopped or inspected."""

    exit_code = 4


class InvalidEvent(PersonaError):
    """An event failed validation; ``kind`` is a stable short code for metrics and the DLQ."""

    def __init__(self, kind: str, reason: str) -> None:
        self.kind = kind
        self.reason = reason
        super().__init__(f"{kind}: {reason}")


class InvalidModel(PersonaError):
    """A model (centroids and metadata) failed validation and must not be used for labelling."""
