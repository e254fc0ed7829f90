"""Garbage-collector settings for services that keep a large, long-lived heap (the scheduler) or
allocate many short-lived objects per request (the gateway).

Why: CPython's cyclic collector runs a young collection every 700 net allocations of tracked
objects, and every 10th of those cascades into an older generation, the oldest of which walks the
whole heap. A scheduler that keeps a record per model (10,000 models are hundreds of thousands of
objects) and allocates small snapshots per decision spent about a tenth of a placement run in
these walks. Raising the young threshold makes collections rarer, not bigger per object: young
collections still see only young objects, and the full walks happen an order of magnitude less
often. ``gc.freeze`` moves what start-up built (imported modules, settings, the policy objects)
into a permanent generation no collection walks again. Cycles are still collected. The gateway
allocates a few hundred objects per proxied request; with the default threshold a young
collection ran every few requests and cost about a tenth of its CPU under load (bench/gateway).
"""

from __future__ import annotations

import gc

# CPython's default young threshold, for the log line and the tests.
DEFAULT_YOUNG_THRESHOLD = 700


def tune_for_large_heap(young_threshold: int) -> None:
    """Freeze what exists now and collect the young generation every ``young_threshold`` objects.

    A threshold of 0 or less leaves the collector's thresholds as they are (only the freeze).
    """
    gc.collect()
    gc.freeze()
    if young_threshold > 0:
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(young_threshold, older, oldest)
