"""How long the monitor takes per window, and what the consumer hot path costs per event.

Measured in one run, on the same synthetic data (vendor centroids, std 2, a 5,000-row reference):
  * hot path: parse a PersonaLabel (pydantic, from JSON bytes) and add it to a window, per event;
  * verdict: relabel + the four calibrated tests for a window of --events events;
  * a window 10× bigger than ``max_window_events`` (kept as a 20,000-event sample);
  * baseline: Evidently's new-API Report with DataDriftPreset (its default verdict) on raw
    x1..x10, and the full report the monitor writes (raw + residuals + distance + persona).

    .venv/bin/python bench/monitor_window.py [--events 10000] [--reference 5000]
"""

from __future__ import annotations

import argparse
import time
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np

from monitor.evidently_report import run_report
from monitor.judge import judge
from monitor.settings import MonitorSettings
from monitor.stats import Reference, label_window
from monitor.windows import TimeWindower, WindowEvent
from personas.catalogue import FEATURES, load_vendor_catalogue
from personas.model import CentroidModel
from personas.schemas import PersonaLabel

T0 = datetime(2025, 3, 3, tzinfo=UTC)


def draw(rng: np.random.Generator, centroids: np.ndarray, n: int, std: float = 2.0) -> np.ndarray:
    which = rng.choice(len(centroids), size=n)
    return centroids[which] + rng.normal(0.0, std, size=(n, centroids.shape[1]))


def labels_json(model: CentroidModel, x: np.ndarray) -> list[bytes]:
    lab = model.label(x)
    out = []
    for i in range(len(x)):
        t = T0 + timedelta(seconds=i)
        out.append(
            PersonaLabel(
                event_id=uuid.uuid4(),
                respondent_id=f"r{i}",
                submitted_at=t,
                persona_id=int(lab.persona_id[i]),
                persona_name=model.name_of(int(lab.persona_id[i])),
                distance=float(lab.distance[i]),
                margin=float(lab.margin[i]),
                is_outlier=bool(lab.is_outlier[i]),
                model_version=1,
                labelled_at=t,
                **{name: float(v) for name, v in zip(FEATURES, x[i], strict=True)},
            )
            .model_dump_json()
            .encode()
        )
    return out


def window_of(raw: list[bytes], max_events: int) -> tuple[float, object]:
    windower = TimeWindower(
        timedelta(days=7),
        origin=datetime(2024, 1, 1, tzinfo=UTC),
        max_events=max_events,
        label="7d",
    )
    started = time.perf_counter()
    for offset, value in enumerate(raw):
        label = PersonaLabel.model_validate_json(value)
        event = WindowEvent(
            label.event_id, label.submitted_at, label.features(), label.model_version
        )
        windower.add_label(event, ("labels", 0), offset)
    (closed,) = windower.advance(T0 + timedelta(days=7))
    return time.perf_counter() - started, closed


def best(fn: object, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000, help="events per window")
    parser.add_argument("--reference", type=int, default=5_000, help="reference rows")
    args = parser.parse_args()

    vendor = load_vendor_catalogue()
    model = CentroidModel(vendor.centroids, vendor.ids, vendor.names, version=1)
    rng = np.random.default_rng(1)
    ref = Reference.build(model, draw(rng, vendor.centroids, args.reference))
    ms = MonitorSettings(_env_file=None, reports="never")  # type: ignore[call-arg]
    import scipy.stats  # noqa: F401  (warm-up, as the service does)

    raw = labels_json(model, draw(rng, vendor.centroids, args.events, std=3.1))
    hot, window = window_of(raw, ms.max_window_events)
    print(f"window {args.events} events, reference {args.reference} rows")
    print(
        f"hot path (parse + window) {hot / args.events * 1e6:8.1f} µs/event "
        f"({args.events / hot:,.0f} events/s)"
    )

    verdict_s = best(lambda: judge(window, ref, ms))  # type: ignore[arg-type]
    print(f"monitor verdict (relabel + 4 tests)      {verdict_s * 1000:8.1f} ms")

    big = 10 * ms.max_window_events
    big_raw = labels_json(model, draw(rng, vendor.centroids, big))
    big_hot, big_window = window_of(big_raw, ms.max_window_events)
    big_s = best(lambda: judge(big_window, ref, ms))  # type: ignore[arg-type]
    print(
        f"{big:,}-event window: windowing {big_hot:.1f} s ({big / big_hot:,.0f} events/s), "
        f"kept {big_window.kept:,} (sampled={big_window.sampled}), verdict {big_s * 1000:.1f} ms"
    )

    import evidently.presets  # noqa: F401  (≈5 s import, not counted)
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    cur = pd.DataFrame(window.features, columns=list(FEATURES))  # type: ignore[attr-defined]
    refdf = pd.DataFrame(ref.features, columns=list(FEATURES))
    baseline_s = best(lambda: Report([DataDriftPreset()], include_tests=True).run(cur, refdf), 2)
    print(f"baseline: Evidently DataDriftPreset raw x1..x10 {baseline_s * 1000:8.1f} ms")
    frame = label_window(model, window.features)  # type: ignore[attr-defined]
    full_s = best(lambda: run_report(ref, window.features, frame), 2)  # type: ignore[attr-defined]
    print(f"monitor's Evidently report (23 columns, ≤5k rows each) {full_s * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
