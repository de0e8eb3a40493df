"""Request and response models of the REST API, and the one parser every request body goes through.

``POST /predict`` accepts the shapes users already send (the seed's client posted positional
lists), so the parser looks at the shape first and validates with the one matching pydantic model:
a pydantic union would report every alternative's errors, which nobody can read. Whatever the
shape, the result is one ``(n, 10)`` float matrix labelled in one call.

The OpenAPI document is generated from the same models and the same batch limits
(``request_models``), and a schemathesis run in the tests checks that the document and the
service agree both ways: nothing the schema allows is refused, nothing it forbids is labelled.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from itertools import combinations
from typing import Annotated, Any

import numpy as np
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    create_model,
)

from personas.catalogue import FEATURES
from personas.schemas import FEATURE_LIMIT, Feature, FeatureFields

__all__ = [
    "ErrorDetail",
    "ErrorResponse",
    "HealthResponse",
    "IndexResponse",
    "InvalidRequest",
    "ModelResponse",
    "NamedRecord",
    "ParsedBatch",
    "PositionalRecord",
    "PredictResponse",
    "Prediction",
    "RecordId",
    "RequestModels",
    "Vector",
    "batch_of",
    "parse_predict_body",
    "request_models",
]

#: Strict, so the id is exactly what the OpenAPI document says (a string or an integer): in lax
#: mode pydantic turns ``false`` into the id ``0`` and ``1.0`` into ``1``, and a client's typo
#: would come back as somebody else's customer id.
RecordId = Annotated[
    StrictStr | StrictInt,
    Field(
        description=(
            "Your identifier for the record, echoed back (e.g. a customer id): a string or an "
            "integer; a boolean or a number with a decimal point (1.0) is refused."
        )
    ),
]


_ID_KEYS = ("id", "customer_id", "respondent_id")


def _document_id_aliases(schema: dict[str, Any]) -> None:
    """Name every key the id is accepted under, and that at most one of them may be given.

    JSON Schema generation names only the first of the validation aliases, so without this the
    document forbids ``customer_id`` (``additionalProperties: false``) while the service accepts
    it — the seed's clients send it. Two of them at once are refused (which one would win?).
    """
    properties = schema["properties"]
    for alias in _ID_KEYS[1:]:
        properties[alias] = {
            **properties["id"],
            "title": alias.replace("_", " ").title(),
            "description": "Another name for id (the seed's clients sent it); give one of them.",
        }
    schema["not"] = {"anyOf": [{"required": list(pair)} for pair in combinations(_ID_KEYS, 2)]}


_WITH_ID = ConfigDict(
    extra="forbid", frozen=True, populate_by_name=True, json_schema_extra=_document_id_aliases
)


class NamedRecord(FeatureFields):
    """One participant with named features, the same names as on the survey-responses topic."""

    model_config = _WITH_ID

    id: RecordId | None = Field(None, validation_alias=AliasChoices(*_ID_KEYS))


Vector = Annotated[
    list[Feature],
    Field(
        min_length=len(FEATURES),
        max_length=len(FEATURES),
        description=f"The {len(FEATURES)} features in order x1..x10.",
    ),
]


class PositionalRecord(BaseModel):
    """The seed's form for one record: ``{"features": [x1..x10]}``, with an optional id."""

    model_config = _WITH_ID

    id: RecordId | None = Field(None, validation_alias=AliasChoices(*_ID_KEYS))
    features: Vector


def batch_of(item: Any, max_batch: int) -> Any:
    """A batch of 1 to ``max_batch`` items: the one declaration of the batch limits, so the
    document's ``minItems``/``maxItems`` are the limits the parser enforces (an empty batch has
    nothing to label and is refused; the upper limit is the service's setting)."""
    return Annotated[
        list[item],
        Field(
            min_length=1,
            max_length=max_batch,
            description=f"1 to {max_batch} records (PERSONA_SERVE_MAX_BATCH).",
        ),
    ]


@dataclass(frozen=True)
class RequestModels:
    """The validators of one batch limit, and the union of every accepted body for OpenAPI."""

    named: TypeAdapter[list[NamedRecord]]
    vectors: TypeAdapter[list[list[float]]]
    body: TypeAdapter[Any]


@functools.cache
def request_models(max_batch: int) -> RequestModels:
    """Built once per batch limit: the limit is a setting, so the batch types cannot be static."""
    named = batch_of(NamedRecord, max_batch)
    vectors = batch_of(Vector, max_batch)
    positional_batch = create_model(
        "PositionalBatch",
        __config__=ConfigDict(extra="forbid", frozen=True),
        __doc__=(
            'The seed\'s batch form: ``{"features": [[x1..x10], ...]}``. No id: an id names one '
            "record; send named records to give each record of a batch its id."
        ),
        features=(vectors, ...),
    )
    # Every accepted body, for the OpenAPI document (parsing itself dispatches on the shape).
    body = NamedRecord | named | PositionalRecord | positional_batch | Vector | vectors
    return RequestModels(
        named=TypeAdapter(named), vectors=TypeAdapter(vectors), body=TypeAdapter(body)
    )


class Prediction(BaseModel):
    """The persona of one record, labelled exactly as the stream labels it."""

    id: RecordId | None = Field(None, description="The record's id if it had one.")
    persona_id: int
    persona_name: str
    distance: float = Field(description="Euclidean distance to the nearest centroid.")
    margin: float = Field(description="Second-nearest distance minus nearest distance.")
    is_outlier: bool = Field(description="distance above the model's outlier threshold.")
    model_version: int = Field(description="Registry version; 0 = vendor centroids bootstrap.")


class PredictResponse(BaseModel):
    """Predictions in request order; one model version labelled the whole batch."""

    model_version: int
    count: int
    predictions: list[Prediction]


class IndexResponse(BaseModel):
    """``GET /``: what answers here and which routes it has."""

    service: str
    routes: list[str]


class HealthResponse(BaseModel):
    status: str = Field(description="ok, or degraded when the registry did not answer lately.")
    model_loaded: bool
    model_version: int
    model_source: str = Field(description="registry, cache (disk copy) or vendor (bootstrap).")
    registry_reachable: bool | None = Field(
        description="Outcome of the latest registry check; null before the first one."
    )
    last_checked_at: datetime | None
    last_error: str | None
    pid: int = Field(description="Worker process that answered (one model holder per worker).")


class ModelResponse(BaseModel):
    model_name: str
    alias: str
    version: int
    source: str
    loaded_at: datetime
    feature_names: list[str]
    persona_ids: list[int]
    persona_names: list[str]
    centroids: list[list[float]]
    outlier_distance: float
    metadata: dict[str, Any]


class ErrorDetail(BaseModel):
    loc: str = Field(description="Where in the body, e.g. records[3].x4.")
    msg: str


class ErrorResponse(BaseModel):
    error: str = Field(description="Stable short code: invalid_request, not_found, ...")
    detail: str = Field(description="One readable sentence saying what is wrong.")
    errors: list[ErrorDetail] = Field(default_factory=list)


class InvalidRequest(Exception):
    """The body cannot be labelled; becomes a 422 (or ``status``) with a readable reason."""

    def __init__(self, detail: str, errors: list[ErrorDetail] | None = None, status: int = 422):
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        self.status = status


@dataclass(frozen=True)
class ParsedBatch:
    features: np.ndarray  # (n, 10) float64
    ids: list[str | int | None]


_record = TypeAdapter(NamedRecord)
_vector = TypeAdapter(Vector)
_record_id = TypeAdapter(RecordId | None)
_ID_REASON = "must be a string or an integer (not a boolean or a number with a decimal point)"


def _loc(prefix: str, loc: tuple[Any, ...]) -> str:
    text = prefix
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def _invalid(exc: ValidationError, prefix: str) -> InvalidRequest:
    errors: list[ErrorDetail] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        key = next((part for part in loc if part in _ID_KEYS), None)
        if key is not None and err["type"] != "extra_forbidden":
            # one line for the id (under whichever alias), not one per member of the union
            detail = ErrorDetail(loc=_loc(prefix, loc[: loc.index(key) + 1]), msg=_ID_REASON)
        else:
            detail = ErrorDetail(loc=_loc(prefix, loc), msg=_message(err))
        if detail not in errors:
            errors.append(detail)
    shown = "; ".join(f"{e.loc}: {e.msg}" for e in errors[:3])
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return InvalidRequest(f"invalid input: {shown}{more}", errors[:100])


def _message(err: Any) -> str:
    ctx = err.get("ctx", {})
    limit = ctx.get("min_length", ctx.get("max_length"))
    if err["type"] in ("too_short", "too_long") and limit == len(FEATURES):
        return f"expected exactly {len(FEATURES)} features (x1..x10), got {ctx['actual_length']}"
    if err["type"] in ("less_than_equal", "greater_than_equal"):
        return f"{err['msg']} (features must lie within ±{FEATURE_LIMIT:g})"
    if err["type"] == "extra_forbidden" and err["loc"][-1] in _ID_KEYS:
        return f"a second id; give one of {', '.join(_ID_KEYS)}"
    if err["type"] == "extra_forbidden":
        return "unknown field; a record has x1..x10 and an optional id"
    return str(err["msg"])


def _check_size(n: int, max_batch: int) -> None:
    if n == 0:
        raise InvalidRequest("the batch is empty: send at least one record")
    if n > max_batch:
        raise InvalidRequest(f"{n} records exceed the batch limit of {max_batch}")


def parse_predict_body(data: Any, max_batch: int) -> ParsedBatch:
    """Turn a decoded JSON body into a feature matrix, or raise InvalidRequest saying why."""
    if isinstance(data, dict):
        if "features" in data:
            return _parse_positional(data, max_batch)
        return _parse_named([data], max_batch, prefix="")
    if isinstance(data, list):
        _check_size(len(data), max_batch)
        first = data[0]
        if isinstance(first, dict):
            return _parse_named(data, max_batch, prefix="records")
        if isinstance(first, list):
            return _parse_vectors(data, "features", max_batch)
        return _parse_vector(data, "features", None)
    raise InvalidRequest(
        f"the body is a JSON {type(data).__name__}; send a record object "
        '({"x1": .., ..., "x10": ..}), a list of records, {"features": [...]} or a list of '
        f"{len(FEATURES)} numbers"
    )


def _parse_named(data: list[Any], max_batch: int, prefix: str) -> ParsedBatch:
    _check_size(len(data), max_batch)
    try:
        # a single object is validated alone so its errors read "x4", not "[0].x4"
        records = (
            request_models(max_batch).named.validate_python(data)
            if prefix
            else [_record.validate_python(data[0])]
        )
    except ValidationError as exc:
        raise _invalid(exc, prefix) from None
    matrix = np.array([[getattr(r, name) for name in FEATURES] for r in records], dtype=np.float64)
    return ParsedBatch(matrix, [r.id for r in records])


def _parse_vectors(data: list[Any], prefix: str, max_batch: int) -> ParsedBatch:
    _check_size(len(data), max_batch)
    try:
        vectors = request_models(max_batch).vectors.validate_python(data)
    except ValidationError as exc:
        raise _invalid(exc, prefix) from None
    return ParsedBatch(np.array(vectors, dtype=np.float64), [None] * len(vectors))


def _parse_vector(data: Any, prefix: str, record_id: str | int | None) -> ParsedBatch:
    try:
        vector = _vector.validate_python(data)
    except ValidationError as exc:
        raise _invalid(exc, prefix) from None
    return ParsedBatch(np.array([vector], dtype=np.float64), [record_id])


def _parse_positional(data: dict[str, Any], max_batch: int) -> ParsedBatch:
    unknown = sorted(set(data) - {"features", *_ID_KEYS})
    if unknown:
        raise InvalidRequest(
            f"unknown field(s) {unknown}: the positional form is "
            '{"features": [x1..x10]} with an optional id, or {"features": [[x1..x10], ...]}',
            [ErrorDetail(loc=name, msg="unknown field") for name in unknown],
        )
    given = [k for k in _ID_KEYS if k in data]
    if len(given) > 1:
        raise InvalidRequest(
            f"the id is given {len(given)} times ({', '.join(given)}); give one of them",
            [ErrorDetail(loc=key, msg="a second id") for key in given[1:]],
        )
    features = data["features"]
    if isinstance(features, list) and features and isinstance(features[0], list):
        if given:  # even null: the batch form has no id (the schema says so)
            raise InvalidRequest(
                "id applies to a single vector; send named records to id a batch",
                [ErrorDetail(loc=given[0], msg="not allowed with a batch")],
            )
        return _parse_vectors(features, "features", max_batch)
    try:
        record_id = _record_id.validate_python(data[given[0]] if given else None)
    except ValidationError:
        raise InvalidRequest(
            f"invalid input: {given[0]}: {_ID_REASON}",
            [ErrorDetail(loc=given[0], msg=_ID_REASON)],
        ) from None
    if not isinstance(features, list):
        raise InvalidRequest(
            f"features must be a list of {len(FEATURES)} numbers or a list of such lists",
            [ErrorDetail(loc="features", msg="not a list")],
        )
    return _parse_vector(features, "features", record_id)
