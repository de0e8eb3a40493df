"""Drift policy: from per-window verdicts to statuses and retrain commands.

* A window whose verdict fails starts or extends an **episode** of consecutive failed windows. Its
  status is ``warning`` until the episode has ``consecutive`` failed windows, then ``drift``
  (default 2: a single false alarm, ~1.5 % of windows, never triggers a retrain; two in a row
  ~0.01 %; real drift is caught in ≥ 95 % of windows so it reaches ``drift`` by the second one).
* A passing window ends the episode (``ok``). A window with too few events (``insufficient_data``)
  neither extends nor ends it.
* The first ``drift`` window of an episode sends **one** RetrainCommand covering the episode in
  event time, **without its first window** when the episode has more than one (second failed
  window's start → this window's end). The first failed window is where the change began: it
  usually straddles the change point (in the original scenario, the Feb 24 – Mar 3 week holds five
  February days and two March days), and a model fitted on that mixture fits neither regime, so
  the next windows would drift again against it and cost a second retrain. No command is sent again in the same
  episode, nor within ``cooldown`` (event time) of the last command's range end: a retrain takes
  a while and the following windows are still judged against the old champion.
* A new champion (hot swap) ends the episode: drift was relative to the old reference.

The policy is a small deterministic state machine over window outcomes, so it can be rebuilt at
start-up by replaying the stored drift_reports rows, and two instances fed the same windows agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal
from uuid import NAMESPACE_URL, UUID, uuid5

__all__ = ["Decision", "DriftPolicy", "Outcome", "RetrainPlan", "Status", "command_id_for"]

Outcome = Literal["pass", "fail", "insufficient"]
Status = Literal["ok", "warning", "drift", "insufficient_data"]


def command_id_for(model_name: str, window_id: str) -> UUID:
    """Deterministic id, so a re-sent command (crash, two instances) is recognisable as the same."""
    return uuid5(NAMESPACE_URL, f"persona-stream:retrain:{model_name}:{window_id}")


@dataclass(frozen=True)
class _Window:
    window_id: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class RetrainPlan:
    range_start: datetime
    range_end: datetime
    window_ids: list[str]
    reason: str


@dataclass(frozen=True)
class Decision:
    window_id: str
    start: datetime
    end: datetime
    outcome: Outcome
    status: Status
    model_version: int | None
    retrain: RetrainPlan | None = None
    note: str = ""


@dataclass
class DriftPolicy:
    consecutive: int = 2
    cooldown: timedelta = timedelta(days=14)
    episode: list[_Window] = field(default_factory=list)
    episode_retrained: bool = False
    last_retrain_end: datetime | None = None
    model_version: int | None = None
    last_end: datetime | None = None

    def decide(
        self,
        window_id: str,
        start: datetime,
        end: datetime,
        outcome: Outcome,
        *,
        model_version: int | None,
        failed_tests: list[str] | None = None,
    ) -> Decision:
        """What this window's status is and whether to retrain; does not change the state."""
        episode = self._episode_for(model_version)
        if outcome == "insufficient":
            return Decision(window_id, start, end, outcome, "insufficient_data", model_version)
        if outcome == "pass":
            return Decision(window_id, start, end, outcome, "ok", model_version)
        windows = [*episode, _Window(window_id, start, end)]
        if len(windows) < self.consecutive:
            note = f"failed window {len(windows)} of {self.consecutive} needed for drift"
            return Decision(window_id, start, end, outcome, "warning", model_version, note=note)
        retrained = self.episode_retrained and bool(episode)
        if retrained:
            note = "drift continues; this episode already sent its retrain command"
            return Decision(window_id, start, end, outcome, "drift", model_version, note=note)
        if self.last_retrain_end is not None and end - self.last_retrain_end < self.cooldown:
            note = f"retrain cooldown until {self.last_retrain_end + self.cooldown:%Y-%m-%d %H:%M}"
            return Decision(window_id, start, end, outcome, "drift", model_version, note=note)
        tests = ", ".join(failed_tests or []) or "verdict"
        trained = windows[1:] if len(windows) > 1 else windows  # see the module docstring
        plan = RetrainPlan(
            range_start=trained[0].start,
            range_end=end,
            window_ids=[w.window_id for w in trained],
            reason=(
                f"drift in {len(windows)} consecutive windows "
                f"({windows[0].window_id} … {window_id}) against model version {model_version}; "
                f"failed: {tests}"
            ),
        )
        return Decision(
            window_id, start, end, outcome, "drift", model_version, plan, "retrain requested"
        )

    def _episode_for(self, model_version: int | None) -> list[_Window]:
        if self.model_version is not None and model_version != self.model_version:
            return []
        return self.episode

    def commit(self, decision: Decision) -> None:
        """Apply a decision (ours, or the one another instance stored first).

        Windows come in event-time order; one that ends no later than the last applied window was
        already applied (replayed from the database at start-up, then re-read from Kafka) and is
        ignored, so a restart cannot count a window twice.
        """
        if self.last_end is not None and decision.end <= self.last_end:
            return
        self.last_end = decision.end
        if self.model_version is not None and decision.model_version != self.model_version:
            self.episode = []
            self.episode_retrained = False
        if decision.model_version is not None:
            self.model_version = decision.model_version
        if decision.status in ("ok",):
            self.episode = []
            self.episode_retrained = False
        elif decision.status in ("warning", "drift"):
            self.episode = [
                *self.episode,
                _Window(decision.window_id, decision.start, decision.end),
            ]
        if decision.retrain is not None:
            self.episode_retrained = True
            self.last_retrain_end = decision.retrain.range_end

    def replay(
        self,
        window_id: str,
        start: datetime,
        end: datetime,
        status: Status,
        model_version: int | None,
        retrained: bool,
    ) -> None:
        """Feed one stored window (start-up, or a window another instance decided)."""
        outcome: Outcome = {"ok": "pass", "insufficient_data": "insufficient"}.get(status, "fail")  # type: ignore[assignment]
        plan = RetrainPlan(start, end, [window_id], "stored") if retrained else None
        self.commit(Decision(window_id, start, end, outcome, status, model_version, plan))
