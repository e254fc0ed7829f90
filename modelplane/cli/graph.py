"""`modelplane graph ...`: load, unload, status, list of KServe InferenceGraphs.

Graphs are run by the same dataflow workers as Pipelines and report the same states and
conditions (``dataflow_commands``).
"""

from __future__ import annotations

from modelplane.cli.dataflow_commands import dataflow_group

KIND = "InferenceGraph"

graph = dataflow_group(
    KIND,
    "graph",
    "Load KServe InferenceGraphs (Sequence, Switch, Ensemble, Splitter nodes) and see their state.",
)
