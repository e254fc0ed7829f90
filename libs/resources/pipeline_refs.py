"""Tensor references of a Seldon v2 Pipeline, parsed once into ``TensorRef``.

Inside a pipeline named ``p`` (step inputs, triggers, tensorMap keys, output steps):

- ``s`` or ``s.outputs``: every output tensor of step ``s``; ``s.outputs.T``: one of them;
- ``s.inputs`` / ``s.inputs.T``: what step ``s`` was sent;
- ``p.inputs`` / ``p.inputs.T``: the pipeline's own input (``p`` is this pipeline's name).

In ``input.externalInputs`` / ``externalTriggers`` (chaining from another pipeline ``q``):
``q.inputs[.T]``, ``q.outputs[.T]``, ``q.step.s.inputs[.T]``, ``q.step.s.outputs[.T]``.

Tensor names may themselves contain dots: everything after the port is the tensor name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from modelplane.libs.resources.types import NAME_PATTERN

Port = Literal["inputs", "outputs"]
PORTS: Final[tuple[Port, ...]] = ("inputs", "outputs")


class BadReference(ValueError):
    """A reference that does not follow the grammar; the message says why."""


@dataclass(frozen=True, slots=True)
class TensorRef:
    """One reference. ``step`` is empty for a pipeline's own inputs/outputs; ``tensor`` is
    empty for "every tensor"."""

    pipeline: str
    step: str
    port: Port
    tensor: str = ""

    def covers(self, tensor: str) -> bool:
        return not self.tensor or self.tensor == tensor

    def text(self, own_pipeline: str = "") -> str:
        """The canonical spelling (``s.outputs.T``; pipeline-qualified when not ``own_pipeline``)."""
        tail = f"{self.port}.{self.tensor}" if self.tensor else self.port
        if self.pipeline == own_pipeline and self.step:
            return f"{self.step}.{tail}"
        if self.step:
            return f"{self.pipeline}.step.{self.step}.{tail}"
        return f"{self.pipeline}.{tail}"


def _name(value: str, what: str, text: str) -> str:
    if not NAME_PATTERN.match(value):
        raise BadReference(
            f"{text!r}: {what} {value!r} is not a valid name (lower-case letters, digits and '-')"
        )
    return value


def _port(value: str, text: str) -> Port:
    if value not in PORTS:
        raise BadReference(f"{text!r}: expected 'inputs' or 'outputs' after the name, got {value!r}")
    return "inputs" if value == "inputs" else "outputs"


def parse_reference(text: str, pipeline: str) -> TensorRef:
    """A reference inside pipeline ``pipeline`` (steps' inputs/triggers, tensorMap keys, output)."""
    text = text.strip()
    parts = text.split(".")
    if not text or any(not part for part in parts):
        raise BadReference(f"{text!r}: empty reference or empty part between dots")
    head = parts[0]
    if len(parts) == 1:
        return TensorRef(pipeline, _name(head, "step", text), "outputs")
    port = _port(parts[1], text)
    tensor = ".".join(parts[2:])
    if head == pipeline:
        if port != "inputs":
            raise BadReference(
                f"{text!r}: a pipeline's own outputs cannot feed its steps; use '{pipeline}.inputs'"
            )
        return TensorRef(pipeline, "", "inputs", tensor)
    return TensorRef(pipeline, _name(head, "step", text), port, tensor)


def parse_external_reference(text: str) -> TensorRef:
    """A reference to another pipeline (``input.externalInputs`` / ``externalTriggers``)."""
    text = text.strip()
    parts = text.split(".")
    if not text or any(not part for part in parts):
        raise BadReference(f"{text!r}: empty reference or empty part between dots")
    if len(parts) < 2:
        raise BadReference(
            f"{text!r}: expected '<pipeline>.inputs|outputs[.TENSOR]' or '<pipeline>.step.<step>.inputs|outputs[.TENSOR]'"
        )
    pipeline = _name(parts[0], "pipeline", text)
    if parts[1] == "step":
        if len(parts) < 4:
            raise BadReference(f"{text!r}: expected '<pipeline>.step.<step>.inputs|outputs[.TENSOR]'")
        step = _name(parts[2], "step", text)
        return TensorRef(pipeline, step, _port(parts[3], text), ".".join(parts[4:]))
    return TensorRef(pipeline, "", _port(parts[1], text), ".".join(parts[2:]))
