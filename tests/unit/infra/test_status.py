"""How `persona status` renders what it read (collecting is tested against the live stack)."""

from __future__ import annotations

from datetime import UTC, datetime

from infra.status import Champion, Group, Member, SystemStatus, Window, _ranges, render

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _status(**changes: object) -> SystemStatus:
    base: dict[str, object] = {
        "taken_at": NOW,
        "groups": [
            Group(
                "stream",
                "persona-stream",
                "stable",
                [Member("w1", "/10.0.0.5", [0, 1, 3])],
                {0: 5, 1: 0},
            ),
            Group("monitor", "persona-monitor", "dead", []),
        ],
        "rest": {"model_version": 3, "status": "ok"},
        "champion": Champion(3, NOW),
        "windows": [Window("w", NOW, NOW, "drift", 1200, 3)],
        "open_commands": [],
        "responses_last_hour": 1000,
        "dead_letters_last_hour": 80,
        "errors": {},
    }
    base.update(changes)
    return SystemStatus(**base)  # type: ignore[arg-type]


def test_the_screen_says_who_is_up_what_lags_and_what_drifted() -> None:
    screen = render(_status())
    assert "stream    up   group persona-stream (stable)" in screen
    assert "1 member(s): w1@10.0.0.5 p0-1,3" in screen
    assert "consumer lag 5 events (p0:5 p1:0)" in screen
    assert "monitor   down group persona-monitor (dead)" in screen
    assert "rest      up   model v3 (ok)" in screen
    assert "80 dead letters in the last hour, 8.0% of 1,000 events" in screen
    assert "drift" in screen and "1,200 events  model v3" in screen


def test_a_source_that_did_not_answer_is_named_not_fatal() -> None:
    screen = render(
        _status(
            groups=[],
            champion=None,
            rest=None,
            dead_letters_last_hour=None,
            errors={"mlflow": "ServiceUnavailable: MLflow at http://x did not answer"},
        )
    )
    assert "champion  unknown (MLflow did not answer)" in screen
    assert "DLQ       unknown (Kafka did not answer)" in screen
    assert "! mlflow: ServiceUnavailable: MLflow at http://x did not answer" in screen


def test_partition_ranges() -> None:
    assert _ranges([]) == "-"
    assert _ranges([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert _ranges([4]) == "4"
