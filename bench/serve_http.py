"""Throughput and latency of `persona serve` (Gunicorn, 2 workers) on this machine.

Runs the real server as a subprocess (vendor model, registry unreachable on purpose so nothing
else is measured) and compares with a baseline measured in the same run: the same WSGI app
called in-process (no HTTP, no Gunicorn), record by record.

    .venv/bin/python bench/serve_http.py [--seconds 3] [--batch 1000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from infra.stack.process import free_port


def hammer(port: int, body: bytes, seconds: float, threads: int) -> tuple[int, list[float]]:
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def run() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine = []
        while time.monotonic() < stop:
            start = time.perf_counter()
            conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            assert response.status == 200
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return len(latencies), latencies


def report(name: str, count: int, latencies: list[float], seconds: float, records: int) -> None:
    p50, p99 = np.percentile(np.array(latencies) * 1000, [50, 99])
    print(
        f"{name:<44} {count / seconds:>9.0f} req/s {count * records / seconds:>11.0f} rec/s"
        f"   p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"
    )


def baseline(seconds: float) -> None:
    from werkzeug.test import Client

    from personas.settings import Settings
    from serving.app import create_app
    from serving.settings import ServeSettings

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(mlflow_port=free_port())
        app = create_app(
            settings,
            ServeSettings(cache_dir=Path(tmp), follow_updates_topic=False),
            background=False,
        )
        client = Client(app)
        body = [0.5] * 10
        latencies = []
        stop = time.monotonic() + seconds
        while time.monotonic() < stop:
            start = time.perf_counter()
            assert client.post("/predict", json=body).status_code == 200
            latencies.append(time.perf_counter() - start)
        report("baseline: in-process WSGI, 1 record", len(latencies), latencies, seconds, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    baseline(args.seconds)

    port = free_port()
    env = {
        **os.environ,
        "PERSONA_MLFLOW_PORT": str(free_port()),  # nothing listens: vendor model, no registry
        "PERSONA_SERVE_FOLLOW_UPDATES_TOPIC": "false",
    }
    persona = Path(sys.executable).parent / "persona"
    with tempfile.TemporaryDirectory() as tmp:
        env["PERSONA_SERVE_CACHE_DIR"] = tmp
        process = subprocess.Popen(
            [str(persona), "serve", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                    conn.request("GET", "/health")
                    if conn.getresponse().status == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("server did not start")
                time.sleep(0.3)
            one = json.dumps([0.5] * 10).encode()
            rows = np.random.default_rng(1).normal(0, 5, (args.batch, 10)).round(4)
            batch = json.dumps({"features": rows.tolist()}).encode()
            for name, body, threads, records in [
                ("gunicorn 2 workers, 1 record, 1 client", one, 1, 1),
                ("gunicorn 2 workers, 1 record, 4 clients", one, 4, 1),
                (f"gunicorn 2 workers, {args.batch} records, 2 clients", batch, 2, args.batch),
            ]:
                count, latencies = hammer(port, body, args.seconds, threads)
                report(name, count, latencies, args.seconds, records)
        finally:
            process.terminate()
            process.wait(20)


if __name__ == "__main__":
    main()
