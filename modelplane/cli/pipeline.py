"""`modelplane pipeline ...`: load, unload, status, list (Seldon's pipeline commands).

A Pipeline's state is computed by the api from what the dataflow workers report and from its
models' states (``dataflow_commands``). Commands that call a pipeline or read its stream (infer,
inspect) are added to the ``pipeline`` group below.
"""

from __future__ import annotations

from modelplane.cli.dataflow_commands import dataflow_group

KIND = "Pipeline"

pipeline = dataflow_group(
    KIND,
    "pipeline",
    "Load Seldon v2 Pipelines (model steps joined by tensor references) and see their state.",
)
