"""Versioned event schemas of every topic (DESIGN.md "Topics and contracts").

Each message carries ``schema_version``; a consumer accepts the versions it knows and sends the rest
to the DLQ. The JSON Schema of each model is exported to ``docs/schemas/`` for other teams
(``persona schemas export``). Validation at the edge is the only place types are enforced.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from personas.catalogue import FEATURES
from personas.errors import InvalidEvent

__all__ = [
    "FEATURE_LIMIT",
    "MAX_EVENT_BYTES",
    "TOPIC_SCHEMAS",
    "Alert",
    "DeadLetter",
    "DriftReport",
    "DriftTest",
    "Feature",
    "FeatureFields",
    "ModelUpdated",
    "PersonaLabel",
    "RetrainCommand",
    "SurveyResponse",
    "TrainerAlert",
    "describe_errors",
    "parse_survey_response",
    "utc_now",
]

#: Features outside ±FEATURE_LIMIT are rejected: survey scales are standardised, and the vendor
#: centroids lie within ±10, so ±1000 catches unit mistakes without rejecting real outliers.
FEATURE_LIMIT = 1000.0
#: A survey response is ~400 bytes of JSON; anything above this is not a survey response.
MAX_EVENT_BYTES = 16_384

Feature = Annotated[
    float,
    Field(strict=True, allow_inf_nan=False, ge=-FEATURE_LIMIT, le=FEATURE_LIMIT),
]


def utc_now() -> datetime:
    return datetime.now(UTC)


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureFields(BaseModel):
    """The ten survey features under the edge's rules (numbers only, finite, within ±FEATURE_LIMIT):
    one declaration shared by the survey-responses event and the REST API's named records."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    x1: Feature
    x2: Feature
    x3: Feature
    x4: Feature
    x5: Feature
    x6: Feature
    x7: Feature
    x8: Feature
    x9: Feature
    x10: Feature

    def features(self) -> tuple[float, ...]:
        return tuple(getattr(self, name) for name in FEATURES)


class _ResponseHeader(_Event):
    schema_version: Literal[1] = 1
    event_id: UUID = Field(description="Unique per event; the idempotency key downstream.")
    respondent_id: str = Field(min_length=1, max_length=64, description="Kafka key.")
    submitted_at: AwareDatetime = Field(description="Event time; also the Kafka timestamp.")

    @field_validator("submitted_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)


# Bases in this order keep the field order of the contract: header, x1..x10, true_persona_id.
class SurveyResponse(FeatureFields, _ResponseHeader):
    """One participant's answers. Topic ``survey-responses``, key ``respondent_id``."""

    true_persona_id: int | None = Field(
        None, ge=0, description="Ground truth, known only for synthetic data."
    )


class PersonaLabel(_Event):
    """The persona a response was given. Topic ``persona-labels``, key ``respondent_id``."""

    schema_version: Literal[1] = 1
    event_id: UUID
    respondent_id: str
    submitted_at: AwareDatetime
    persona_id: int
    persona_name: str
    distance: float = Field(description="Euclidean distance to the nearest centroid.")
    margin: float = Field(description="Second-nearest distance minus nearest distance.")
    is_outlier: bool = Field(description="distance above the model's outlier threshold.")
    model_version: int = Field(description="Registry version; 0 = vendor centroids bootstrap.")
    labelled_at: AwareDatetime
    x1: float
    x2: float
    x3: float
    x4: float
    x5: float
    x6: float
    x7: float
    x8: float
    x9: float
    x10: float

    def features(self) -> tuple[float, ...]:
        return tuple(getattr(self, name) for name in FEATURES)


class DeadLetter(_Event):
    """An input we could not use, kept whole: the decoded view of a ``survey-responses.dlq``
    record, whose key and value are the original bytes and whose headers ``persona.errors.*``
    carry the other fields (``persona tail dlq --json`` prints this document)."""

    schema_version: Literal[1] = 1
    error_kind: str = Field(description="Stable short code, e.g. not_json, invalid_field.")
    reason: str = Field(description="Readable explanation of what is wrong.")
    source_topic: str
    source_partition: int
    source_offset: int
    original_key: str | None = Field(description="Key as text (UTF-8, replacement chars).")
    original_value_b64: str = Field(description="The original value bytes, base64.")
    failed_at: AwareDatetime


class DriftTest(_Event):
    """One test of a window: its statistic, p-value or score, threshold and verdict."""

    name: str
    statistic: float | None = None
    p_value: float | None = None
    threshold: float | None = None
    failed: bool
    detail: str = ""


class DriftReport(_Event):
    """The verdict on one closed event-time window. Topic ``drift-alerts``, key ``window_id``."""

    schema_version: Literal[1] = 1
    kind: Literal["drift_report"] = "drift_report"
    window_id: str
    window_start: AwareDatetime
    window_end: AwareDatetime
    event_count: int
    model_version: int
    status: Literal["ok", "warning", "drift", "insufficient_data"]
    tests: list[DriftTest] = Field(default_factory=list)
    persona_mix: dict[str, float] = Field(default_factory=dict)
    mean_distance: float | None = None
    sampled: bool = Field(False, description="True when the window was sampled to bound memory.")
    report_uri: str | None = Field(None, description="Where the full Evidently report is.")
    created_at: AwareDatetime


class TrainerAlert(_Event):
    """Something the trainer wants a person to decide on. Topic ``drift-alerts``."""

    schema_version: Literal[1] = 1
    kind: Literal["candidate_persona", "gate_failed", "retrain_failed"]
    command_id: UUID | None = None
    message: str
    details: dict[str, Any] = Field(default_factory=dict)
    created_at: AwareDatetime


Alert = Annotated[DriftReport | TrainerAlert, Field(discriminator="kind")]


class RetrainCommand(_Event):
    """Ask the trainer to refit on an event-time range. Topic ``retrain-commands``."""

    schema_version: Literal[1] = 1
    command_id: UUID
    range_start: AwareDatetime
    range_end: AwareDatetime
    reason: str
    requested_by: str
    requested_at: AwareDatetime
    window_ids: list[str] = Field(default_factory=list)


class ModelUpdated(_Event):
    """The champion alias moved. Topic ``model-updates``, key model name; every worker reads all."""

    schema_version: Literal[1] = 1
    model_name: str
    version: int
    alias: str
    run_id: str | None = None
    previous_version: int | None = None
    updated_at: AwareDatetime


TOPIC_SCHEMAS: dict[str, Any] = {
    "survey-responses": SurveyResponse,
    "persona-labels": PersonaLabel,
    "survey-responses.dlq": DeadLetter,
    "drift-alerts": TypeAdapter(Alert),
    "retrain-commands": RetrainCommand,
    "model-updates": ModelUpdated,
}

_KNOWN_VERSIONS = {1}


def describe_errors(exc: ValidationError, *, with_input: bool = False, empty: str = "event") -> str:
    """The first three errors on one line, ``field: message`` each (DLQ reasons, CLI errors)."""
    errors = exc.errors(include_url=False)
    parts = []
    for err in errors[:3]:
        where = ".".join(str(p) for p in err["loc"]) or empty
        got = f" (got {err.get('input')!r})" if with_input else ""
        parts.append(f"{where}: {err['msg']}{got}")
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more


def parse_survey_response(raw: bytes | None) -> SurveyResponse:
    """Validate raw Kafka value bytes; raise InvalidEvent with a stable kind and readable reason."""
    import json

    if raw is None or len(raw) == 0:
        raise InvalidEvent("empty", "the message value is empty")
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent(
            "oversized", f"{len(raw)} bytes exceeds the {MAX_EVENT_BYTES} byte limit"
        )
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidEvent("not_json", f"value is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidEvent("not_object", f"value is a JSON {type(data).__name__}, not an object")
    version = data.get("schema_version", 1)
    if version not in _KNOWN_VERSIONS:
        raise InvalidEvent(
            "unknown_schema_version",
            f"schema_version {version!r} is not one of {sorted(_KNOWN_VERSIONS)}",
        )
    for name in FEATURES:
        value = data.get(name)
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidEvent("non_finite", f"{name} is {value}")
    try:
        return SurveyResponse.model_validate(data)
    except ValidationError as exc:
        raise InvalidEvent("invalid_field", describe_errors(exc)) from None
