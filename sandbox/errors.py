"""The one error type the sandbox raises: an HTTP status plus a Spine error code.

Raised by the state (e.g. booking a taken slot), by request validation and by handlers, and
turned into a GP Connect OperationOutcome (or, on the supplier endpoints, a JSON error) by
the app, so a Python caller and an HTTP caller see the same code for the same mistake.
"""

from __future__ import annotations


class SandboxError(Exception):
    """A refused request: HTTP `status`, Spine `code` (e.g. DUPLICATE_REJECTED) and why."""

    def __init__(self, status: int, code: str, diagnostics: str) -> None:
        super().__init__(f"{status} {code}: {diagnostics}")
        self.status = status
        self.code = code
        self.diagnostics = diagnostics


def bad_request(diagnostics: str) -> SandboxError:
    return SandboxError(400, "BAD_REQUEST", diagnostics)


def invalid_parameter(diagnostics: str) -> SandboxError:
    return SandboxError(422, "INVALID_PARAMETER", diagnostics)


def invalid_resource(diagnostics: str) -> SandboxError:
    return SandboxError(422, "INVALID_RESOURCE", diagnostics)


def no_record(diagnostics: str) -> SandboxError:
    return SandboxError(404, "NO_RECORD_FOUND", diagnostics)
