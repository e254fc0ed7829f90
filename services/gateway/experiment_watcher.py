"""Keeps the experiment table in step with the ``KV_EXPERIMENTS`` bucket (see watcher.py)."""

from __future__ import annotations

from modelplane.libs.dataplane.watcher import BucketWatcher
from modelplane.libs.resources.convert import experiment_from_pb
from modelplane.libs.resources.types import Experiment
from modelplane.libs.store import TypedBucket
from modelplane.proto import resources_pb2
from modelplane.services.gateway.experiments import ExperimentTable


def _decode(key: str, msg: resources_pb2.Experiment) -> Experiment:
    return experiment_from_pb(msg)


class ExperimentWatcher(BucketWatcher[resources_pb2.Experiment, Experiment]):
    """Applies every Experiment change to an ExperimentTable, forever (a supervised task)."""

    def __init__(
        self,
        bucket: TypedBucket[resources_pb2.Experiment],
        table: ExperimentTable,
        restart_delay: float = 1.0,
    ) -> None:
        super().__init__(bucket, table, _decode, "experiment", restart_delay)
