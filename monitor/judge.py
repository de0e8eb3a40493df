"""Judge one closed window: relabel with the champion, run the tests, optionally Evidently.

The window's events are labelled again with the champion that holds the reference (one matrix
product, ~17M events/s), even though each PersonaLabel already carries a persona: after a hot
swap a window mixes labels of two model versions, and comparing old-model distances with the new
model's reference would be meaningless. How many labels came from another version is reported.

Test names without a colon form the verdict (OR); names with a colon are informational
(``evidently:<column>``, ``evidently:dataset_drift``, ``info:<what>``, and the per-persona parts
of ``persona_shift`` / ``persona_spread``: ``persona:<name>:shift`` and ``persona:<name>:spread``
for every persona tested, whose p-value is Holm-adjusted and so compares with the threshold, and
``persona:<name>:<feature>`` for each feature that moved in a persona flagged by the shift test,
its statistic the shift in that persona's residual SDs). They ride in ``tests`` so that the
DriftReport's schema, and every consumer of it, stay as they were.

A test of the verdict that cannot run must not read as a pass. When Evidently is part of the
verdict (``evidently_in_verdict``) and crashes, the window is ``insufficient`` (published as
``insufficient_data``: no verdict, no retrain, the episode neither grows nor ends) with an
``info:verdict_error`` naming the error, unless a calibrated test already failed: the verdict is
an OR, so that failure decides it alone (the note says so). A crash of a report-only Evidently
leaves the verdict as it is and is said in ``info:evidently_report``. Both are logged as errors.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from monitor.evidently_report import EvidentlyResult, run_report
from monitor.policy import Decision, Outcome
from monitor.settings import MonitorSettings
from monitor.stats import PersonaResult, Reference, TestResult, label_window, run_tests
from monitor.windows import ClosedWindow
from personas.schemas import DriftReport, DriftTest, utc_now

__all__ = ["Verdict", "judge", "persona_tests", "report_path", "to_report", "warm_up"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    model_version: int
    tests: list[DriftTest] = field(default_factory=list)
    failed_tests: list[str] = field(default_factory=list)
    persona_mix: dict[str, float] = field(default_factory=dict)
    mean_distance: float | None = None
    evidently: EvidentlyResult | None = None
    seconds: float = 0.0  # the verdict (labelling + calibrated tests)
    report_seconds: float = 0.0  # the optional Evidently report
    moved_personas: dict[str, list[str]] = field(default_factory=dict)  # persona → features


def _info(name: str, statistic: float | None, detail: str) -> DriftTest:
    return DriftTest(name=f"info:{name}", statistic=statistic, failed=False, detail=detail)


def _pipeline_tests(window: ClosedWindow, ref: Reference | None) -> list[DriftTest]:
    tests = []
    if window.response_count:
        share = window.event_count / window.response_count
        tests.append(
            _info(
                "labelled_share",
                share,
                f"{window.event_count} labelled of {window.response_count} survey responses "
                "in this window",
            )
        )
    if window.sampled:
        tests.append(
            _info(
                "sampled",
                float(window.kept),
                f"judged on a sample of {window.kept} of {window.event_count} events",
            )
        )
    if window.late_events:
        oldest = (
            ""
            if window.late_oldest is None
            else f" (oldest dated {window.late_oldest.isoformat()})"
        )
        tests.append(
            _info(
                "late_events",
                float(window.late_events),
                f"{window.late_events} events arrived after their window was reported and were not "
                f"judged{oldest}",
            )
        )
    if ref is not None and window.kept:
        other = int((window.model_versions != ref.version).sum())
        if other:
            tests.append(
                _info(
                    "relabelled",
                    float(other),
                    f"{other} events labelled by another model version were relabelled with "
                    f"version {ref.version}",
                )
            )
    return tests


def persona_tests(result: TestResult) -> list[DriftTest]:
    """The informational per-persona parts of a per-persona test family (see the docstring)."""
    tests: list[DriftTest] = []
    for part in result.personas:
        tests.append(
            DriftTest(
                name=f"persona:{part.persona}:{part.test}",
                statistic=part.statistic,
                p_value=part.adjusted_p,
                threshold=result.threshold,
                failed=part.failed,
                detail=f"{part.n} events; {part.detail}; unadjusted p = {part.p_value:.2e}",
            )
        )
        if part.failed:
            tests.extend(
                DriftTest(
                    name=f"persona:{part.persona}:{f.feature}",
                    statistic=f.shift,
                    p_value=f.p_value,
                    failed=True,
                    detail=f"{part.persona}'s mean {f.feature} moved {f.shift:+.2f} residual SDs",
                )
                for f in part.features
            )
    return tests


def judge(window: ClosedWindow, ref: Reference | None, ms: MonitorSettings) -> Verdict:
    """The verdict on a window (no I/O except Evidently's optional HTML, done by the caller)."""
    import time

    started = time.perf_counter()
    pipeline = _pipeline_tests(window, ref)
    if ref is None:
        version = int(window.model_versions.max()) if window.kept else 0
        note = _info("reference", None, "no champion with a reference sample is registered")
        return Verdict("insufficient", version, [note, *pipeline])
    if window.kept < ms.min_events:
        note = _info(
            "too_few_events",
            float(window.kept),
            f"{window.kept} events; at least {ms.min_events} are needed to judge a window",
        )
        return Verdict("insufficient", ref.version, [note, *pipeline])

    frame = label_window(ref.model, window.features)
    results = run_tests(ref, frame, alpha=ms.alpha, names=ms.tests)
    tests = [
        DriftTest(
            name=r.name,
            statistic=r.statistic,
            p_value=r.p_value,
            threshold=r.threshold,
            failed=r.failed,
            detail=r.detail,
        )
        for r in results
    ]
    for r in results:
        tests.extend(persona_tests(r))
    failed = [r.name for r in results if r.failed]
    moved: dict[str, list[str]] = {}  # personas flagged by a per-persona test → moved features
    for part in sorted((p for r in results for p in r.personas if p.failed), key=_by_name):
        moved.setdefault(part.persona, []).extend(f.feature for f in part.features)
    mix = {
        name: float(c) / frame.n
        for name, c in zip(ref.model.persona_names, frame.counts, strict=True)
    }
    seconds = time.perf_counter() - started
    evidently = None
    crash: str | None = None
    wants_report = ms.reports == "all" or (ms.reports == "non_ok" and bool(failed))
    if ms.evidently_in_verdict or wants_report:
        evidently, crash = _evidently(window, ref, frame, ms, moved)
    name = "evidently_dataset_drift" if ms.evidently_in_verdict else "evidently:dataset_drift"
    if evidently is not None:
        tests.append(
            DriftTest(
                name=name,
                statistic=evidently.drifted_share,
                threshold=0.5,
                failed=evidently.dataset_drift,
                detail="share of report columns Evidently marks drifted (≥ 0.5 fails)",
            )
        )
        if ms.evidently_in_verdict and evidently.dataset_drift:
            failed.append(name)
        for col in evidently.columns:
            is_p = "p_value" in col.method or col.method == "ks"
            tests.append(
                DriftTest(
                    name=f"evidently:{col.column}",
                    statistic=None if is_p else col.score,
                    p_value=col.score if is_p else None,
                    threshold=col.threshold,
                    failed=col.drifted,
                    detail=col.method,
                )
            )
    outcome: Outcome = "fail" if failed else "pass"
    if crash is not None:
        note, outcome = _crash_note(window, name, crash, failed, in_verdict=ms.evidently_in_verdict)
        tests.append(note)
    return Verdict(
        outcome,
        ref.version,
        [*tests, *pipeline],
        failed,
        mix,
        float(frame.distance.mean()),
        evidently,
        seconds,
        time.perf_counter() - started - seconds,
        moved,
    )


def warm_up(ms: MonitorSettings) -> None:
    """Import scipy.stats (≈1 s) and, if reports or the workspace are on, Evidently (≈5 s) before
    the first window."""
    import scipy.stats  # noqa: F401

    if ms.reports != "never" or ms.evidently_in_verdict:
        import evidently.presets  # noqa: F401
    if ms.evidently_workspace is not None:  # the drift history (monitor/workspace.py)
        from evidently.ui import workspace  # noqa: F401

        from monitor import workspace_metric  # noqa: F401


def _by_name(part: PersonaResult) -> str:
    return part.persona


def _evidently(
    window: ClosedWindow,
    ref: Reference,
    frame: object,
    ms: MonitorSettings,
    moved: dict[str, list[str]],
) -> tuple[EvidentlyResult | None, str | None]:
    """(the report, None), or (None, what went wrong): Evidently is third-party code on data it
    has not seen, so any exception is caught here and judged by the caller."""
    try:
        result = run_report(
            ref,
            window.features,
            frame,  # type: ignore[arg-type]
            method=ms.evidently_method,
            max_rows=ms.evidently_max_rows,
            residuals=ms.evidently_residuals,
            personas=moved if ms.evidently_residuals else None,
            seed=window.event_count,
            name=window.window_id,
            timestamp=window.end,
        )
    except Exception as exc:
        log.exception("Evidently report failed for window %s", window.window_id)
        return None, f"{type(exc).__name__}: {exc}"
    return result, None


def _crash_note(
    window: ClosedWindow, name: str, crash: str, failed: list[str], *, in_verdict: bool
) -> tuple[DriftTest, Outcome]:
    """The note on a crashed Evidently and the outcome it leaves (see the module docstring)."""
    if not in_verdict:
        detail = f"the Evidently report could not be made ({crash}); the verdict does not use it"
        return _info("evidently_report", None, detail), "fail" if failed else "pass"
    if failed:
        detail = f"{name} could not run ({crash}); the window fails on the calibrated tests alone"
        outcome: Outcome = "fail"
    else:
        detail = (
            f"{name} could not run ({crash}); the calibrated tests passed, but without it there "
            "is no verdict: the window is not judged"
        )
        outcome = "insufficient"
    log.error("window %s: %s", window.window_id, detail)
    return _info("verdict_error", None, detail), outcome


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def report_path(reports_dir: Path, window_id: str, model_version: int) -> Path:
    """Where a window's HTML report goes (file names without colons)."""
    return reports_dir / f"{_UNSAFE.sub('_', window_id)}-v{model_version}.html"


def to_report(
    window: ClosedWindow,
    verdict: Verdict,
    decision: Decision,
    *,
    report_uri: str | None,
    created_at: datetime | None = None,
) -> DriftReport:
    tests = list(verdict.tests)
    if decision.note:
        tests.append(_info("policy", None, decision.note))
    return DriftReport(
        window_id=window.window_id,
        window_start=window.start,
        window_end=window.end,
        event_count=window.event_count,
        model_version=verdict.model_version,
        status=decision.status,
        tests=tests,
        persona_mix=verdict.persona_mix,
        mean_distance=verdict.mean_distance,
        sampled=window.sampled,
        report_uri=report_uri,
        created_at=created_at or utc_now(),
    )
