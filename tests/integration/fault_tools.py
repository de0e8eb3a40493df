"""Tools of the fault tests: wait on a condition, a free port, a TCP link the test can cut.

Shared by every integration package (pytest puts this folder on ``sys.path``): a service "goes
down" for one process only, by cutting its link, so the shared stack stays up for other tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from infra.demo.services import ChildService
from infra.stack.process import free_port, server_port
from infra.stack.tcp_proxy import TcpProxy

__all__ = ["TcpProxy", "free_port", "server_port", "wait_for", "wait_until"]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll ``predicate`` until it is truthy and return that value; fail naming ``what`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_until(
    service: ChildService, predicate: Callable[[], Any], timeout: float, what: str
) -> None:
    """``wait_for`` that fails at once, with the service's log, if the service exits."""

    def check() -> Any:
        if not service.alive():
            raise AssertionError(
                f"{service.name} exited ({service.returncode}) while waiting for {what}:\n"
                f"{service.output()[-3000:]}"
            )
        return predicate()

    try:
        wait_for(check, timeout, what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{service.output()[-3000:]}") from None
