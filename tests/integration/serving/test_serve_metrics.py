"""`persona serve` under Gunicorn exports one set of metrics for all its workers: whichever worker
answers a scrape, the counts are the whole server's (prometheus_client multiprocess mode), and a
worker that dies takes its live gauge with it but not its counts."""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from prometheus_client.parser import text_string_to_metric_families
from serve_process import Server

from infra.stack.process import wait_until

Sample = tuple[str, tuple[tuple[str, str], ...]]


def _scrape(server: Server) -> dict[Sample, float]:
    with urllib.request.urlopen(server.base + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _predicted(samples: dict[Sample, float]) -> float:
    return samples.get(
        ("persona_serve_requests_total", (("route", "/predict"), ("status", "200"))), 0.0
    )


def _versions(samples: dict[Sample, float]) -> dict[str, float]:
    return {
        dict(labels)["pid"]: value
        for (name, labels), value in samples.items()
        if name == "persona_serve_model_version"
    }


def test_every_scrape_shows_the_whole_servers_counts(
    start_server: Callable[..., Server],
) -> None:
    server = start_server(workers=2)
    # Requests until both workers have answered some (the kernel may hand one worker a long run
    # of connections on a busy machine): the counts below must then add up across processes.
    answered: set[int] = set()
    sent = 0
    deadline = time.monotonic() + 120
    while (len(answered) < 2 or sent < 40) and time.monotonic() < deadline:
        with ThreadPoolExecutor(
            4
        ) as pool:  # concurrent: a busy worker leaves the next to the other
            results = list(
                pool.map(lambda i: server.post("/predict", [[float(i % 7)] * 10]), range(8))
            )
            pids = list(pool.map(lambda _: server.get("/health")[1]["pid"], range(8)))
        assert all(status == 200 for status, _ in results), results
        sent += len(results)
        answered.update(pids)
    assert len(answered) == 2, "both workers should have answered (the test relies on it)"

    for _ in range(6):  # each scrape lands on either worker: all must show the total
        samples = _scrape(server)
        assert _predicted(samples) == sent
        assert samples[("persona_serve_predicted_records_total", ())] == sent
    versions = _versions(_scrape(server))
    assert set(versions) == {str(pid) for pid in server.worker_pids()}

    victim = min(server.worker_pids())
    os.kill(victim, signal.SIGKILL)
    assert wait_until(
        lambda: len(server.worker_pids()) == 2 and victim not in server.worker_pids(), 60
    ), server.output()
    # Gunicorn's child_exit marked it dead: its live gauge is gone, its counts are not.
    assert wait_until(lambda: str(victim) not in _versions(_scrape(server)), 30), server.output()
    assert _predicted(_scrape(server)) == sent
