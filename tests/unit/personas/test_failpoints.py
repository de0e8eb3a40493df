"""Failpoints: a named point kills the process only when PERSONA_FAILPOINTS names it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from personas.failpoints import ENV, failpoint


def _reach(point: str, armed: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if armed is not None:
        env[ENV] = armed
    code = f"from personas.failpoints import failpoint; failpoint({point!r}); print('passed')"
    return subprocess.run([sys.executable, "-c", code], env=env, check=False).returncode


@pytest.mark.parametrize("armed", ["a.b", "x.y, a.b", "a.b,"])
def test_an_armed_point_sigkills_the_process(armed: str) -> None:
    assert _reach("a.b", armed) == -signal.SIGKILL


@pytest.mark.parametrize("armed", [None, "", "a.bc", "a"])
def test_other_points_pass(armed: str | None) -> None:
    assert _reach("a.b", armed) == 0


def test_unset_in_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    failpoint("anything")  # returns
