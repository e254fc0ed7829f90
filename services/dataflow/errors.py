"""Errors of one dataflow request. Each carries the HTTP status the caller finally sees, so the
gateway can answer a pipeline request the way it answers a model request."""

from __future__ import annotations

from modelplane.libs.errors import DeadlineError, ModelplaneError


class StepCallError(ModelplaneError):
    """A model (or URL) called by a step answered with an error, or could not be reached.

    ``status`` is the HTTP status it answered (502 when it could not be reached, 504 on time-out);
    ``message`` is its error text."""

    def __init__(self, target: str, status: int, message: str) -> None:
        super().__init__(f"{target}: {message}")
        self.target = target
        self.status = status
        self.http_status = status


class StepFailedError(ModelplaneError):
    """A pipeline step failed: the request ends with that step's error (Seldon semantics)."""

    def __init__(self, step: str, cause: StepCallError) -> None:
        super().__init__(f"step {step} failed: {cause.message}")
        self.step = step
        self.cause = cause
        self.http_status = cause.status


class JoinTimeoutError(DeadlineError):
    """An inner join's window passed while some of its inputs were still missing."""

    def __init__(self, step: str, window_ms: int, missing: tuple[str, ...]) -> None:
        super().__init__(
            f"step {step}: join window of {window_ms} ms passed without {', '.join(missing)}",
        )
        self.step = step
        self.missing = missing


class NoOutputError(ModelplaneError):
    """The request ran to the end without producing what the pipeline's output waits for."""

    http_status = 500


class NotLoadedYet(Exception):
    """This worker does not run the pipeline or graph a request names (yet): a resource just
    applied may reach the gateway before this worker. The request goes back to JetStream to be
    delivered again shortly; at its last delivery it is answered 404."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} is not loaded")
        self.what = what
