"""Interpreter steps per placement: a measure of the in-memory run that machine load cannot move.

Wall time on a shared machine drifts by up to 1.5x between runs; the number of bytecode
instructions the interpreter executes for the same workload does not. This runs the same loop as
``inmemory.run`` under ``sys.settrace`` with opcode events (about 20x slower, so it is not a
timing) and prints the steps per placed model and the functions that take most of them, to
compare two versions of the code.

.venv/bin/python -m bench.scheduler --steps
"""

from __future__ import annotations

import sys
from collections import Counter
from types import FrameType
from typing import Any

from bench.scheduler.inmemory import book, build_cluster
from bench.scheduler.workload import plan_models, plan_servers
from modelplane.services.scheduler.placement import Placed, default_policy, place
from modelplane.services.scheduler.policy.base import PlacementRequest


def count_steps(models: int, servers: int, replicas: int, strategy: str, top: int = 15) -> None:
    cluster = build_cluster(servers, replicas)
    requests = [PlacementRequest(name, 1, spec) for name, spec in plan_models(models, plan_servers(servers))]
    policy = default_policy(strategy)
    cluster.views.views()
    steps: Counter[str] = Counter()

    def on_call(frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        code = frame.f_code
        key = f"{code.co_filename.rsplit('/', 1)[-1]}:{code.co_name}"

        def on_step(frame: FrameType, event: str, arg: Any) -> Any:
            if event == "opcode":
                steps[key] += 1
            return on_step

        return on_step

    sys.settrace(on_call)
    try:
        for request in requests:
            decision = place(request, cluster.views.views(), policy)
            if isinstance(decision, Placed):
                book(cluster, request, decision)
        cluster.views.views()
    finally:
        sys.settrace(None)
    total = sum(steps.values())
    print("== interpreter steps (bytecode instructions) ==")
    print(f"models:            {models} onto {servers} servers x {replicas} replicas, strategy {strategy}")
    print(f"steps per model:   {total / models:,.0f}")
    for name, count in steps.most_common(top):
        print(f"  {count / models:8.1f}  {100 * count / total:5.1f}%  {name}")
