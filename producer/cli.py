"""`persona generate | publish | replay | tail`: make survey data, send it, watch the topics."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from personas.errors import ConfigError, PersonaError

if TYPE_CHECKING:
    from personas.catalogue import Catalogue
    from personas.synthetic import Scenario
    from producer.publisher import PublishSummary
    from producer.settings import ProducerSettings

__all__ = ["register"]


class DeliveryFailed(PersonaError):
    """Some events were not delivered; the summary above says how many and why."""


def _floats(text: str | None, what: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated numbers, got {text!r}") from None


def _feature_indices(text: str) -> tuple[int, ...]:
    from personas.catalogue import FEATURES

    names = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in names if v not in FEATURES]
    if unknown or not names:
        raise ConfigError(f"--shift-features takes names from x1..x10, got {text!r}")
    return tuple(FEATURES.index(v) for v in names)


def _scenarios(
    mix: str | None,
    new_share: float | None,
    new_centroid: str | None,
    variance_factor: float | None,
    shift_features: str | None,
    shift_by: float | None,
    gradual: bool,
    shift_by_persona: str | None = None,
) -> tuple[Scenario, ...]:
    """Scenarios in their fixed order: mix → new persona → variance → mean shift."""
    from personas.synthetic import (
        DEFAULT_NEW_CENTROID,
        Gradual,
        MeanShift,
        MixChange,
        NewPersona,
        VarianceGrowth,
    )

    found: list[Scenario] = []
    weights = _floats(mix, "--mix")
    if weights is not None:
        found.append(MixChange(weights))
    if new_share is not None:
        centroid = _floats(new_centroid, "--new-persona-centroid") or DEFAULT_NEW_CENTROID
        found.append(NewPersona(new_share, centroid))
    if variance_factor is not None:
        found.append(VarianceGrowth(variance_factor))
    if shift_by is not None and shift_by_persona is not None:
        raise ConfigError("--shift-by and --shift-by-persona exclude each other")
    amounts = _floats(shift_by_persona, "--shift-by-persona")
    if (shift_features is None) != (shift_by is None and amounts is None):
        raise ConfigError("--shift-features and --shift-by (or --shift-by-persona) go together")
    if shift_features is not None and shift_by is not None:
        found.append(MeanShift(_feature_indices(shift_features), shift_by))
    if shift_features is not None and amounts is not None:
        found.extend(
            MeanShift(_feature_indices(shift_features), delta, personas=(j,))
            for j, delta in enumerate(amounts)
            if delta
        )
    if gradual:
        if not found:
            raise ConfigError("--gradual needs a scenario to ramp up (e.g. --shift-by)")
        found = [Gradual(s) for s in found]
    return tuple(found)


def _out_path(out: Path | None, month: str) -> Path:
    if out is None:
        return Path("data") / f"{month}.parquet"
    if out.is_dir() or not out.suffix:
        return out / f"{month}.parquet"
    return out


def _load_catalogue(path: Path | None) -> Catalogue:
    from personas.catalogue import load_vendor_catalogue
    from personas.errors import InputFileError

    try:
        return load_vendor_catalogue(path)
    except (OSError, ValueError, KeyError) as exc:
        raise InputFileError(f"cannot read the persona catalogue {path}: {exc}") from None


def generate(
    month: Annotated[str, typer.Option(help="Calendar month of the data, YYYY-MM.")] = "2025-01",
    n: Annotated[
        int | None, typer.Option("--n", help="Rows (respondents). Default 500, as the original.")
    ] = None,
    std: Annotated[
        float | None,
        typer.Option(help="Noise std on every feature around the centroids. Default 2.0."),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help="Random seed; the data is a function of (seed, month). Default 42."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Output .csv or .parquet file, or a folder (→ FOLDER/<month>.parquet). "
            "Default data/<month>.parquet."
        ),
    ] = None,
    tz: Annotated[
        str, typer.Option(help="Time zone whose month boundaries are used (stored in UTC).")
    ] = "UTC",
    mix: Annotated[
        str | None,
        typer.Option(help="Scenario 'mix change': persona shares, e.g. 0.6,0.2,0.2."),
    ] = None,
    new_persona_share: Annotated[
        float | None,
        typer.Option(help="Scenario 'new persona': share of rows moved to a new centroid."),
    ] = None,
    new_persona_centroid: Annotated[
        str | None,
        typer.Option(help="Centroid of the new persona (10 comma-separated numbers)."),
    ] = None,
    variance_factor: Annotated[
        float | None,
        typer.Option(help="Scenario 'variance growth': noise multiplied by this (3.1/2 = 1.55)."),
    ] = None,
    shift_features: Annotated[
        str | None, typer.Option(help="Scenario 'mean shift': features to shift, e.g. x1,x2.")
    ] = None,
    shift_by: Annotated[
        float | None, typer.Option(help="Scenario 'mean shift': amount added to them.")
    ] = None,
    shift_by_persona: Annotated[
        str | None,
        typer.Option(
            help="Scenario 'per-persona mean shift': one amount per persona in id order, e.g. "
            "1,-1,0 (Steve up, Haley down, Pat unchanged); instead of --shift-by."
        ),
    ] = None,
    gradual: Annotated[
        bool,
        typer.Option(help="Scenarios grow linearly from none on the 1st to full at month end."),
    ] = False,
    original_month: Annotated[
        str | None,
        typer.Option(
            help="Take n/std/seed of this month of the original project (e.g. 2025-03: std 3.1)."
        ),
    ] = None,
    original: Annotated[
        bool,
        typer.Option(
            "--original",
            help="Write the original project's five months (Jan-May 2025) into --out (a folder).",
        ),
    ] = False,
    catalogue_file: Annotated[
        Path | None, typer.Option("--catalogue", help="Vendor personas JSON (default: packaged).")
    ] = None,
) -> None:
    """Generate a month of synthetic survey responses around the vendor's persona centroids.

    Mirrors the original create_data (n, std, seed, month, output), with timestamps spread over
    the month, a unique event_id and respondent_id per row, and composable drift scenarios.
    """
    import time

    from producer.files import write_events
    from producer.generator import MonthSpec, generate_month, original_months

    catalogue = _load_catalogue(catalogue_file)
    scenarios = _scenarios(
        mix,
        new_persona_share,
        new_persona_centroid,
        variance_factor,
        shift_features,
        shift_by,
        gradual,
        shift_by_persona,
    )
    if original:
        if n is not None or std is not None or seed is not None or original_month is not None:
            raise ConfigError(
                "--original writes the original five months as they were; "
                "use --original-month with --n/--std/--seed to change one"
            )
        folder = out or Path("data")
        for spec in original_months(catalogue):
            spec = MonthSpec(spec.month, spec.n, spec.std, spec.seed, tz, None, scenarios)
            path = write_events(generate_month(spec, catalogue), folder / f"{spec.month}.parquet")
            typer.echo(f"{path}: {spec.n} rows, std {spec.std:g}, seed {spec.seed}")
        return
    base = {"n": 500, "std": 2.0, "seed": 42}
    if original_month is not None:
        match = [m for m in original_months(catalogue) if m.month == original_month]
        if not match:
            known = ", ".join(m.month for m in original_months(catalogue))
            raise ConfigError(f"--original-month must be one of {known}")
        base = {"n": match[0].n, "std": match[0].std, "seed": match[0].seed}
        month = original_month
    spec = MonthSpec(
        month=month,
        n=int(base["n"] if n is None else n),
        std=float(base["std"] if std is None else std),
        seed=int(base["seed"] if seed is None else seed),
        tz=tz,
        scenarios=scenarios,
    )
    started = time.perf_counter()
    frame = generate_month(spec, catalogue)
    path = write_events(frame, _out_path(out, month))
    typer.echo(
        f"{path}: {spec.n} rows for {month} (std {spec.std:g}, seed {spec.seed}, "
        f"{len(scenarios)} scenario(s)) in {time.perf_counter() - started:.1f} s"
    )


def _report(summary: PublishSummary, ps: ProducerSettings) -> None:
    shown = summary.errors[: ps.max_errors_shown]
    for error in shown:
        typer.echo(f"invalid: {error}", err=True)
    if len(summary.errors) > len(shown):
        typer.echo(f"… and {len(summary.errors) - len(shown)} more invalid row(s)", err=True)
    for note in summary.notes:
        typer.echo(f"note: {note}", err=True)
    for reason, count in summary.delivery_errors.most_common():
        typer.echo(f"delivery failed: {count} × {reason}", err=True)
    typer.echo(summary.line())
    if not summary.ok:
        raise DeliveryFailed(f"{summary.failed} event(s) were not delivered")


def _check_choice(value: str, choices: tuple[str, ...], option: str) -> str:
    if value not in choices:
        raise ConfigError(f"{option} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _print_invalid(exc: Exception, ps: ProducerSettings) -> None:
    errors = getattr(exc, "errors", [])
    for error in errors[: ps.max_errors_shown]:
        typer.echo(f"invalid: {error}", err=True)
    if len(errors) > ps.max_errors_shown:
        typer.echo(f"… and {len(errors) - ps.max_errors_shown} more invalid row(s)", err=True)


def publish(
    file: Annotated[Path, typer.Argument(help="CSV or Parquet file of survey responses.")],
    topic: Annotated[
        str | None, typer.Option(help="Target topic (default: the survey-responses topic).")
    ] = None,
    on_invalid: Annotated[
        str,
        typer.Option(
            help="skip: send the valid rows, report the bad ones; fail: send nothing if any is bad."
        ),
    ] = "skip",
    raw: Annotated[
        bool,
        typer.Option(help="Send every row as it is, unvalidated (to test the dead-letter queue)."),
    ] = False,
    rate: Annotated[float | None, typer.Option(help="At most this many events per second.")] = None,
    on_future: Annotated[
        str,
        typer.Option(
            help="Rows whose time the topic rejects (over 1 h ahead): fail (send nothing) or skip."
        ),
    ] = "fail",
    validate: Annotated[
        str | None,
        typer.Option(help="fast (vectorised + schema sample) or full (schema on every row)."),
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Validate a data file and publish it: key respondent_id, Kafka timestamp submitted_at.

    Bad rows are reported with their line number and reason. Exits non-zero if any event was not
    delivered, or (with --on-invalid fail) if any row is invalid.
    """
    from personas.settings import Settings
    from producer.publisher import InvalidRowsError, progress_enabled, publish_file

    settings = Settings()
    ps = _producer_settings(validate)
    if raw:
        from producer.files import read_events
        from producer.publisher import publish_raw_frame

        df, _ = read_events(file)
        _report(publish_raw_frame(settings, df, topic=topic, producer_settings=ps), ps)
        return
    try:
        summary = publish_file(
            settings,
            file,
            topic=topic,
            on_invalid=_check_choice(on_invalid, ("skip", "fail"), "--on-invalid"),
            rate=rate,
            on_future=_check_choice(on_future, ("fail", "skip"), "--on-future"),
            producer_settings=ps,
            progress=not quiet and progress_enabled(ps.progress),
        )
    except InvalidRowsError as exc:
        _print_invalid(exc, ps)
        raise
    _report(summary, ps)


def _producer_settings(validate: str | None) -> ProducerSettings:
    from producer.settings import ProducerSettings

    ps = ProducerSettings()
    if validate is not None:
        mode = _check_choice(validate, ("fast", "full"), "--validate")
        ps = ps.model_copy(update={"validate_mode": mode})
    return ps


def replay(
    file: Annotated[Path | None, typer.Option(help="Replay this CSV or Parquet file.")] = None,
    from_db: Annotated[
        bool, typer.Option(help="Replay the labelled events stored in PostgreSQL instead.")
    ] = False,
    speed: Annotated[
        float,
        typer.Option(
            help="Event time per wall time: 3600 = an hour of events a second; 0 = no pacing."
        ),
    ] = 0.0,
    as_fast_as_possible: Annotated[bool, typer.Option(help="Same as --speed 0.")] = False,
    start: Annotated[
        str | None, typer.Option(help="First event time to replay (date or ISO time, UTC).")
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="Replay events before this time (date or ISO time, UTC).")
    ] = None,
    topic: Annotated[
        str | None, typer.Option(help="Target topic (default: the survey-responses topic).")
    ] = None,
    on_invalid: Annotated[
        str, typer.Option(help="skip or fail, as for publish (file source only).")
    ] = "skip",
    on_future: Annotated[
        str, typer.Option(help="Rows the topic would reject for their time: fail or skip.")
    ] = "fail",
    rate: Annotated[float | None, typer.Option(help="At most this many events per second.")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Replay a month (or a time range) in event-time order, keeping the event timestamps.

    Re-running sends the same event_ids again: PostgreSQL stays free of duplicates (one row per
    event_id), persona-labels gets a second label per event (see docs/producer.md).
    """
    from personas.settings import Settings
    from producer.publisher import InvalidRowsError, progress_enabled
    from producer.replay import replay as run_replay

    settings = Settings()
    ps = _producer_settings(None)
    try:
        summary = run_replay(
            settings,
            file=file,
            from_db=from_db,
            speed=0.0 if as_fast_as_possible else speed,
            start=start,
            end=end,
            topic=topic,
            on_invalid=_check_choice(on_invalid, ("skip", "fail"), "--on-invalid"),
            on_future=_check_choice(on_future, ("fail", "skip"), "--on-future"),
            rate=rate,
            producer_settings=ps,
            progress=not quiet and progress_enabled(ps.progress),
        )
    except InvalidRowsError as exc:
        _print_invalid(exc, ps)
        raise
    _report(summary, ps)


def tail(
    topic: Annotated[
        str,
        typer.Argument(help="labels, alerts, dlq, responses, retrain or model-updates."),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per line (with partition, offset).")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(help="Start at the first message at or after this time (e.g. 2025-03-01)."),
    ] = None,
    from_beginning: Annotated[
        bool, typer.Option(help="Start at the oldest message (default: new messages only).")
    ] = False,
    max_messages: Annotated[
        int | None, typer.Option("--max", help="Stop after this many messages.")
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(help="Stop after this many seconds without a new message."),
    ] = None,
    topic_name: Annotated[
        str | None, typer.Option(help="Read this exact topic name (formatted as TOPIC).")
    ] = None,
) -> None:
    """Print the messages of a topic readably, or as JSON lines, until a bound or Ctrl-C."""
    from personas.settings import Settings
    from producer.replay import parse_time
    from producer.tail import consume, format_message, resolve_topic

    settings = Settings()
    name = resolve_topic(settings, topic)
    since_ms = parse_time(since) // 1000 if since else None
    for msg in consume(
        settings,
        topic_name or name,
        since_ms=since_ms,
        from_beginning=from_beginning,
        max_messages=max_messages,
        timeout_s=timeout,
    ):
        typer.echo(msg.to_json() if as_json else format_message(topic, msg))


def register(app: typer.Typer) -> None:
    """Add generate, publish, replay and tail to the root CLI."""
    app.command(rich_help_panel="Producer")(generate)
    app.command(rich_help_panel="Producer")(publish)
    app.command(rich_help_panel="Producer")(replay)
    app.command(rich_help_panel="Producer")(tail)
