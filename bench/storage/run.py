"""Storage benchmark: S3 download throughput, ours vs boto3 in the same run, and cache hits.

How to run (from the repository root; needs ~3x ``--size-mib`` of free temp disk):

    .venv/bin/python -m bench.storage                    # 200 MiB artifact, 5 rounds
    .venv/bin/python -m bench.storage --size-mib 50 --runs 3
    .venv/bin/python bench/storage/run.py --work-dir /var/tmp

It starts ``moto_server`` on a free port, uploads a random artifact, then repeats ``--runs``
rounds of: boto3 ``download_file`` (what ``aws s3 cp`` does; the baseline), our storage
handler's fetch into an empty cache, the same fetch as a cache hit, and the agent's copy of the
cached file (see s3_download.py). It prints every round, then the median and best of each
figure and the ratio ours/baseline (throughput, so > 1 means faster than the baseline). There
are no thresholds: the machine is shared and the baseline is measured beside ours to cancel that
out.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: make the repository root importable (``bench`` is not installed).
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def _summary(label: str, values: list[float], fmt: Callable[[float], str], higher_is_better: bool) -> None:
    best = max(values) if higher_is_better else min(values)
    print(f"{label:<28} median {fmt(statistics.median(values)):>14}   best {fmt(best):>14}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.storage", description=__doc__)
    parser.add_argument("--size-mib", type=int, default=200, help="artifact size in MiB")
    parser.add_argument("--runs", type=int, default=5, help="rounds (median and best are reported)")
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="where temp files go (default: system temp)"
    )
    args = parser.parse_args(argv)
    if args.size_mib <= 0 or args.runs <= 0:
        parser.error("--size-mib and --runs must be positive")

    from bench.storage import s3_download
    from modelplane.libs import logs

    # Info logs of the storage service are not what is measured; keep errors only.
    logs.configure("bench", "error")
    print(f"command: {' '.join(sys.orig_argv)}")
    size = args.size_mib
    server = s3_download.MotoServer()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-storage-secrets-", dir=args.work_dir) as secrets:
            s3_download.prepare(server, size, Path(secrets), args.work_dir)
            print(f"artifact: {size} MiB of random bytes in moto_server at {server.endpoint}")
            registry = s3_download.new_registry(args.work_dir)
            s3_download.warm_up(registry, Path(secrets), size, args.work_dir)
            rounds = []
            for n in range(1, args.runs + 1):
                r = s3_download.run_round(registry, server.endpoint, Path(secrets), size, args.work_dir)
                rounds.append(r)
                print(
                    f"round {n}: baseline {size / r.baseline_s:7.1f} MiB/s   ours (cold) {size / r.cold_s:7.1f} MiB/s"
                    f"   ratio {r.baseline_s / r.cold_s:5.2f}   hit {r.hit_s * 1e3:7.2f} ms"
                    f"   agent copy {size / r.copy_s:7.1f} MiB/s"
                )
    finally:
        server.stop()

    def mib_s(v: float) -> str:
        return f"{v:.1f} MiB/s"

    def ms(v: float) -> str:
        return f"{v * 1e3:.2f} ms"

    def ratio(v: float) -> str:
        return f"{v:.2f}x"

    print(f"== S3 download of {size} MiB, {args.runs} rounds ==")
    _summary("baseline (boto3 download_file)", [size / r.baseline_s for r in rounds], mib_s, True)
    _summary("ours, empty cache", [size / r.cold_s for r in rounds], mib_s, True)
    _summary("ratio ours/baseline", [r.baseline_s / r.cold_s for r in rounds], ratio, True)
    _summary("ours, cache hit", [r.hit_s for r in rounds], ms, False)
    _summary("agent copy from the cache", [size / r.copy_s for r in rounds], mib_s, True)


if __name__ == "__main__":
    main()
