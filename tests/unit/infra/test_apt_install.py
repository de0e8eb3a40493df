"""infra.stack.process.apt_install: the one way the stack installs a Debian package."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from infra.stack import process
from personas.errors import StackError


def test_update_then_install_and_a_failure_names_the_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[list[str]] = []

    def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        assert kwargs["env"]["DEBIAN_FRONTEND"] == "noninteractive"
        code = 100 if argv[1] == "install" else 0
        return subprocess.CompletedProcess(argv, code, "", "E: Unable to locate package nope")

    monkeypatch.setattr(process.subprocess, "run", run)
    with pytest.raises(StackError, match=r"`apt-get install -y -q nope` failed: E: Unable"):
        process.apt_install("nope")
    assert calls == [["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "nope"]]
