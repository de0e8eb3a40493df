"""Drift policy: consecutive windows, one retrain per episode, cooldown, hot swap, replay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.policy import Decision, DriftPolicy, Outcome, command_id_for

T0 = datetime(2025, 2, 3, tzinfo=UTC)
WEEK = timedelta(days=7)


def feed(policy: DriftPolicy, outcomes: str, *, first: int = 0, version: int = 1) -> list[Decision]:
    """outcomes: p = pass, f = fail, i = insufficient; one weekly window each."""
    names: dict[str, Outcome] = {"p": "pass", "f": "fail", "i": "insufficient"}
    decisions = []
    for k, code in enumerate(outcomes, start=first):
        start = T0 + k * WEEK
        d = policy.decide(
            f"w{k}", start, start + WEEK, names[code], model_version=version, failed_tests=["x"]
        )
        policy.commit(d)
        decisions.append(d)
    return decisions


def statuses(decisions: list[Decision]) -> list[str]:
    return [d.status for d in decisions]


def retrains(decisions: list[Decision]) -> list[str]:
    return [d.window_id for d in decisions if d.retrain is not None]


def test_one_failed_window_is_a_warning_two_are_drift() -> None:
    decisions = feed(DriftPolicy(consecutive=2), "pfpffffpp")
    assert statuses(decisions) == [
        "ok", "warning", "ok", "warning", "drift", "drift", "drift", "ok", "ok"
    ]  # fmt: skip
    assert retrains(decisions) == ["w4"]


def test_retrain_range_covers_the_episode() -> None:
    decisions = feed(DriftPolicy(consecutive=3, cooldown=timedelta(0)), "pfff")
    (plan,) = [d.retrain for d in decisions if d.retrain is not None]
    # the episode's first window straddles the change point: it is not trained on
    assert plan.range_start == T0 + 2 * WEEK
    assert plan.range_end == T0 + 4 * WEEK
    assert plan.window_ids == ["w2", "w3"]
    assert "3 consecutive windows" in plan.reason and "model version 1" in plan.reason


def test_a_one_window_episode_trains_on_that_window() -> None:
    decisions = feed(DriftPolicy(consecutive=1, cooldown=timedelta(0)), "pf")
    (plan,) = [d.retrain for d in decisions if d.retrain is not None]
    assert (plan.range_start, plan.range_end) == (T0 + WEEK, T0 + 2 * WEEK)
    assert plan.window_ids == ["w1"]


def test_one_episode_one_retrain_even_without_cooldown() -> None:
    decisions = feed(DriftPolicy(consecutive=2, cooldown=timedelta(0)), "ffffffff")
    assert retrains(decisions) == ["w1"]
    assert "already sent" in decisions[-1].note


def test_insufficient_windows_neither_extend_nor_end_an_episode() -> None:
    decisions = feed(DriftPolicy(consecutive=2), "fif")
    assert statuses(decisions) == ["warning", "insufficient_data", "drift"]
    assert retrains(decisions) == ["w2"]


def test_cooldown_blocks_a_second_episode_soon_after() -> None:
    policy = DriftPolicy(consecutive=2, cooldown=timedelta(days=21))
    decisions = feed(policy, "ffpffpppff")
    # episode 1 retrains at w1 (range end T0 + 2 weeks); episode 2 reaches drift at w4, whose
    # end is 21 days later: allowed with a 21-day cooldown, blocked with a 28-day one.
    assert retrains(decisions) == ["w1", "w4", "w9"]
    policy = DriftPolicy(consecutive=2, cooldown=timedelta(days=28))
    decisions = feed(policy, "ffpffpppff")
    assert retrains(decisions) == ["w1", "w9"]
    blocked = decisions[4]
    assert blocked.status == "drift" and blocked.retrain is None
    assert blocked.note.startswith("retrain cooldown until 2025-03-17")


def test_a_new_champion_ends_the_episode() -> None:
    policy = DriftPolicy(consecutive=2, cooldown=timedelta(0))
    first = feed(policy, "ff", version=1)
    after_swap = feed(policy, "fpf", first=2, version=2)
    assert statuses(first) == ["warning", "drift"]
    assert statuses(after_swap) == ["warning", "ok", "warning"]
    assert retrains(first + after_swap) == ["w1"]


def test_replaying_stored_windows_restores_the_state() -> None:
    live = DriftPolicy(consecutive=2)
    decisions = feed(live, "pff")
    restored = DriftPolicy(consecutive=2)
    for d in decisions:
        restored.replay(d.window_id, d.start, d.end, d.status, 1, d.retrain is not None)
    assert [w.window_id for w in restored.episode] == ["w1", "w2"]
    assert restored.episode_retrained and restored.last_retrain_end == T0 + 3 * WEEK
    # the episode goes on after the restart: drift, but no second command
    (next_one,) = feed(restored, "f", first=3)
    assert next_one.status == "drift" and next_one.retrain is None


def test_command_id_is_deterministic() -> None:
    assert command_id_for("m", "7d-2025-03-03T00:00:00Z") == command_id_for(
        "m", "7d-2025-03-03T00:00:00Z"
    )
    assert command_id_for("m", "a") != command_id_for("m", "b")
    assert command_id_for("m", "a") != command_id_for("other", "a")


def test_a_window_applied_twice_counts_once() -> None:
    """Start-up replays stored windows; Kafka may then deliver the last of them again."""
    policy = DriftPolicy(consecutive=3)
    decisions = feed(policy, "ff")
    policy.commit(decisions[-1])  # re-read after a restart
    assert [w.window_id for w in policy.episode] == ["w0", "w1"]
    (third,) = feed(policy, "f", first=2)
    assert third.status == "drift" and third.retrain is not None
    assert third.retrain.window_ids == ["w1", "w2"]  # episode w0..w2, trained without w0
