"""Helpers to talk to a `persona serve` subprocess (kept out of conftest so tests can import them)."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def http(method: str, url: str, body: Any = None, timeout: float = 10) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class Server:
    def __init__(self, process: subprocess.Popen[bytes], base: str, log: Path) -> None:
        self.process = process
        self.base = base
        self.log = log

    def get(self, path: str) -> tuple[int, Any]:
        return http("GET", self.base + path)

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        return http("POST", self.base + path, body)

    def worker_pids(self) -> set[int]:
        """Gunicorn's worker processes (children of the master), from /proc."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return {int(c) for c in children}

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]
