"""What the monitor's consumer loop costs per label, without Kafka: ``MonitorService.route_all`` on
in-memory messages, in batches of 1,000 as ``consume`` gives them (issue 14, "throughput").

Separates the loop's own Python (parse, future check, checkpoint, window add) from the broker, so a
profile shows where the time goes:

    .venv/bin/python bench/monitor_route.py [--events 200000] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import threading
import time
from dataclasses import dataclass

import numpy as np
from monitor_window import draw, labels_json  # bench/ is on sys.path when run as a script

from monitor.service import MonitorService
from monitor.settings import MonitorSettings
from personas.catalogue import load_vendor_catalogue
from personas.model import CentroidModel
from personas.settings import Settings


@dataclass(frozen=True, slots=True)
class _Message:
    """The part of a confluent-kafka ``Message`` that ``route`` reads."""

    payload: bytes
    offset_no: int
    partition_no: int

    def topic(self) -> str:
        return "labels"

    def partition(self) -> int:
        return self.partition_no

    def offset(self) -> int:
        return self.offset_no

    def value(self) -> bytes:
        return self.payload

    def error(self) -> None:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument(
        "--window", default="1d", help="window size (1d: 28 windows; 7d: 4, fuller samples)"
    )
    parser.add_argument("--profile", action="store_true", help="print cProfile's top lines")
    args = parser.parse_args()
    vendor = load_vendor_catalogue()
    model = CentroidModel(vendor.centroids, vendor.ids, vendor.names, version=1)
    n = args.events
    x = draw(np.random.default_rng(1), vendor.centroids, n)
    raw = labels_json(model, x, step_s=28 * 86_400 / n)  # four weeks: 28 daily windows
    batches = [
        [_Message(value, i // 4, i % 4) for i, value in enumerate(raw[b : b + 1000], b)]
        for b in range(0, n, 1000)
    ]
    base = Settings(_env_file=None)
    settings = base.model_copy(
        update={"topics": base.topics.model_copy(update={"labels": "labels"})}
    )
    ms = MonitorSettings(_env_file=None, consume_responses=False, window=args.window)
    service = MonitorService(settings, ms, threading.Event())
    profile = cProfile.Profile() if args.profile else None
    started = time.perf_counter()
    if profile is not None:
        profile.enable()
    for batch in batches:
        service.route_all(batch)
    if profile is not None:
        profile.disable()
    elapsed = time.perf_counter() - started
    print(
        f"{n:,} labels routed in {elapsed:.2f} s: {elapsed / n * 1e6:.2f} µs/label "
        f"({n / elapsed:,.0f} labels/s{', under cProfile' if profile else ''}); "
        f"counted {service.stats.labels:,}"
    )
    if profile is not None:
        pstats.Stats(profile).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
