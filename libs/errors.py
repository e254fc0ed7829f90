"""One error hierarchy for the whole project; errors say what should happen next.

Libs and handlers raise these. Only the edges (gRPC servicers, REST routes, the CLI) map them to
status codes, with ``grpc_code_name``/``http_status`` so no lib imports grpc or a web framework.
"""

from __future__ import annotations


class ModelplaneError(Exception):
    """Base of every error modelplane raises on purpose."""

    http_status = 500
    grpc_code_name = "INTERNAL"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        # The offending input field, dotted (e.g. "spec.storageUri"), when there is one.
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class InvalidError(ModelplaneError):
    """The input is wrong; sending it again will not help."""

    http_status = 400
    grpc_code_name = "INVALID_ARGUMENT"


class NotFoundError(ModelplaneError):
    """The named resource does not exist."""

    http_status = 404
    grpc_code_name = "NOT_FOUND"


class ConflictError(ModelplaneError):
    """A concurrent writer changed the state first; re-read and retry."""

    http_status = 409
    grpc_code_name = "ABORTED"


class RetryableError(ModelplaneError):
    """A passing condition (a dependency is down or busy); retry after ``delay`` seconds."""

    http_status = 503
    grpc_code_name = "UNAVAILABLE"

    def __init__(self, message: str, *, delay: float = 1.0, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.delay = delay


class PermanentError(ModelplaneError):
    """It failed and will fail again the same way (e.g. a model server rejected the model)."""

    http_status = 500
    grpc_code_name = "FAILED_PRECONDITION"


class DeadlineError(RetryableError):
    """An operation did not finish in time."""

    http_status = 504
    grpc_code_name = "DEADLINE_EXCEEDED"


class UnauthenticatedError(ModelplaneError):
    """The caller presented no valid credentials (no token, an unknown or revoked one)."""

    http_status = 401
    grpc_code_name = "UNAUTHENTICATED"


class PermissionDeniedError(ModelplaneError):
    """The caller is known but its role may not do this; ``field`` names what it may not set."""

    http_status = 403
    grpc_code_name = "PERMISSION_DENIED"
