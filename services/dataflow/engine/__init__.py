"""The pipeline engine: one request through a Seldon v2 Pipeline, in process.

No NATS and no HTTP here: model calls go through an injected ``StepCaller``. The dataflow
worker builds one ``PipelineRunner`` per loaded pipeline (``compile_pipeline`` first) and calls
``run`` for each request it takes.
"""

from modelplane.services.dataflow.engine.batching import StepBatcher
from modelplane.services.dataflow.engine.calls import StepCaller, StepObserver
from modelplane.services.dataflow.engine.compiled import CompiledPipeline, CompiledStep, compile_pipeline
from modelplane.services.dataflow.engine.run import PipelineRunner

__all__ = [
    "CompiledPipeline",
    "CompiledStep",
    "PipelineRunner",
    "StepBatcher",
    "StepCaller",
    "StepObserver",
    "compile_pipeline",
]
