"""A msgspec mirror of :class:`personas.schemas.SurveyResponse`: the stream's fast path for the
valid case.

Why a second declaration of one contract: pydantic validates a survey event in ~6 µs, msgspec
decodes it into a typed ``Struct`` in ~2 µs (docs/facts.md), and at tens of thousands of events
per second that difference is most of a core. The pydantic model stays *the* contract: it is
what ``docs/schemas/`` exports, what every other service validates with, and what writes the DLQ
reason of an invalid event. This mirror only has to be **narrower**: every document it accepts
is accepted by ``SurveyResponse`` with the same normalised values, and anything it refuses goes
to pydantic, which accepts it (the rare valid event outside the narrow form, e.g. an upper-case
UUID) or explains it. Narrower on purpose where the two libraries differ:

* ``event_id``: only the canonical lower-case hyphenated form (what ``str(UUID)`` gives, so the
  string *is* the normalised value);
* ``submitted_at``: only ``YYYY-MM-DDTHH:MM:SS[.ffffff](Z|±HH:MM)`` with 1–6 fraction digits,
  parsed by ``datetime.fromisoformat`` (pydantic truncates a 7th digit, msgspec would round it);
* ``true_persona_id``: a JSON integer within int64 (pydantic also takes ``1.0`` or a bignum).

``tests/unit/personas/test_survey_fast.py`` proves it with hypothesis over valid and invalid
events: same accept/reject decision as ``parse_survey_response``, same values.
"""

from __future__ import annotations

from datetime import datetime
from operator import attrgetter
from typing import Annotated, Literal, cast

import msgspec

from personas.schemas import FEATURE_LIMIT, MAX_EVENT_BYTES, SurveyResponse

__all__ = [
    "Decoded",
    "SurveyResponseStruct",
    "decode_all",
    "decode_survey_response",
    "from_model",
]

_UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_STAMP = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$"

_Feature = Annotated[float, msgspec.Meta(ge=-FEATURE_LIMIT, le=FEATURE_LIMIT)]


class SurveyResponseStruct(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """The fields of ``SurveyResponse`` (same names, same order of the contract).

    ``submitted_at`` is kept as the validated text here; :func:`decode_survey_response` gives it
    beside the struct as an aware ``datetime``."""

    event_id: Annotated[str, msgspec.Meta(pattern=_UUID)]
    respondent_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    submitted_at: Annotated[str, msgspec.Meta(pattern=_STAMP)]
    x1: _Feature
    x2: _Feature
    x3: _Feature
    x4: _Feature
    x5: _Feature
    x6: _Feature
    x7: _Feature
    x8: _Feature
    x9: _Feature
    x10: _Feature
    schema_version: Literal[1] = 1
    true_persona_id: Annotated[int, msgspec.Meta(ge=0)] | None = None


_decode = msgspec.json.Decoder(SurveyResponseStruct).decode
_fromisoformat = datetime.fromisoformat


#: An event and its ``submitted_at`` as an aware datetime (any UTC offset).
Decoded = tuple[SurveyResponseStruct, datetime]


def decode_survey_response(raw: bytes | None) -> Decoded | None:
    """The event if it is valid in the narrow form; None means "ask pydantic" (valid or not)."""
    if not raw or len(raw) > MAX_EVENT_BYTES:
        return None
    try:
        event = _decode(raw)
        return event, _fromisoformat(event.submitted_at)
    except (msgspec.ValidationError, msgspec.DecodeError, ValueError):
        return None


_submitted_at_of = attrgetter("submitted_at")


def decode_all(
    values: list[bytes | None],
) -> tuple[list[SurveyResponseStruct], list[datetime]] | None:
    """Every value of a batch in the narrow form, decoded in C loops (``map``, no per-event
    bytecode); None as soon as one is not (too large, absent, anything ``decode_survey_response``
    refuses): then the caller decides event by event. Accepts exactly what a loop of
    ``decode_survey_response`` over the values would accept, with the same values."""
    present = cast("list[bytes]", values)  # an absent value raises TypeError in len(): None
    try:
        if max(map(len, present), default=0) > MAX_EVENT_BYTES:
            return None
        events = list(map(_decode, present))
        return events, list(map(_fromisoformat, map(_submitted_at_of, events)))
    except (msgspec.ValidationError, msgspec.DecodeError, ValueError, TypeError):
        return None


def from_model(event: SurveyResponse) -> Decoded:
    """An event pydantic accepted outside the narrow form, normalised as pydantic does."""
    submitted = event.submitted_at
    struct = SurveyResponseStruct(
        event_id=str(event.event_id),
        respondent_id=event.respondent_id,
        submitted_at=submitted.isoformat(),
        x1=event.x1,
        x2=event.x2,
        x3=event.x3,
        x4=event.x4,
        x5=event.x5,
        x6=event.x6,
        x7=event.x7,
        x8=event.x8,
        x9=event.x9,
        x10=event.x10,
        true_persona_id=event.true_persona_id,
    )
    return struct, submitted
