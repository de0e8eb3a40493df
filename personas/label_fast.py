"""A msgspec mirror of :class:`personas.schemas.PersonaLabel`: the monitor's fast path for the
valid case.

The same bargain as personas/survey_fast.py, for the other side of the stream: pydantic validates
a label in ~11 µs, which alone held the monitor near 30k labels/s; msgspec decodes one in ~2.8 µs
(docs/benchmarks/monitor.md). ``PersonaLabel`` stays the contract — what ``docs/schemas/``
exports and what decides (and explains) every label this mirror refuses. The mirror is
**narrower**: whatever it accepts, ``PersonaLabel`` accepts with the same values; what it refuses
goes to pydantic, which accepts it (a valid label in another spelling) or says why not:

* ``event_id``: only the canonical lower-case hyphenated form (the string *is* ``str(UUID)``);
* ``submitted_at``, ``labelled_at``: only ``YYYY-MM-DDTHH:MM:SS[.ffffff](Z|±HH:MM)``, parsed by
  ``datetime.fromisoformat`` (both, so an impossible date is refused here too);
* integers only as JSON integers, booleans only as ``true``/``false`` (pydantic's lax mode also
  takes ``1.0`` or ``"true"``).

``tests/unit/personas/test_label_fast.py`` proves it with hypothesis over valid and invalid labels.
"""

from __future__ import annotations

from collections import deque as _drain
from datetime import datetime
from operator import attrgetter
from typing import Annotated, Literal, cast

import msgspec

from personas.catalogue import FEATURES
from personas.schemas import PersonaLabel
from personas.survey_fast import _STAMP, _UUID

__all__ = ["LabelStruct", "decode_label", "decode_labels", "features_of", "from_model"]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
#: Integers the window arrays (int64) can hold; a bigger one is left to pydantic (and refused).
_Int64 = Annotated[int, msgspec.Meta(ge=_INT64_MIN, le=_INT64_MAX)]
_INT64_FIELDS = ("persona_id", "model_version")


class LabelStruct(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """The fields of ``PersonaLabel``; the timestamps are kept as their validated text."""

    event_id: Annotated[str, msgspec.Meta(pattern=_UUID)]
    respondent_id: str
    submitted_at: Annotated[str, msgspec.Meta(pattern=_STAMP)]
    persona_id: _Int64
    persona_name: str
    distance: float
    margin: float
    is_outlier: bool
    model_version: _Int64
    labelled_at: Annotated[str, msgspec.Meta(pattern=_STAMP)]
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
    schema_version: Literal[1] = 1


_decode = msgspec.json.Decoder(LabelStruct).decode
_fromisoformat = datetime.fromisoformat
_submitted_at_of = attrgetter("submitted_at")
_labelled_at_of = attrgetter("labelled_at")

#: The ten features of a decoded label, as a tuple (one C call).
features_of = attrgetter(*FEATURES)


def decode_label(raw: bytes | None) -> tuple[LabelStruct, datetime] | None:
    """One label in the narrow form, with its ``submitted_at``; None means "ask pydantic"."""
    if not raw:
        return None
    try:
        label = _decode(raw)
        _fromisoformat(label.labelled_at)
        return label, _fromisoformat(label.submitted_at)
    except (msgspec.ValidationError, msgspec.DecodeError, ValueError):
        return None


def decode_labels(
    values: list[bytes | None],
) -> tuple[list[LabelStruct], list[datetime]] | None:
    """Every value of a run in the narrow form, decoded in C loops (``map``, no per-label
    bytecode); None as soon as one is not (an absent value too): then the caller decides label by
    label. Accepts exactly what a loop of :func:`decode_label` would, with the same values."""
    present = cast("list[bytes]", values)  # an absent value raises TypeError in the decoder
    try:
        labels = list(map(_decode, present))
        _drain(map(_fromisoformat, map(_labelled_at_of, labels)), maxlen=0)
        return labels, list(map(_fromisoformat, map(_submitted_at_of, labels)))
    except (msgspec.ValidationError, msgspec.DecodeError, ValueError, TypeError):
        return None


def from_model(label: PersonaLabel) -> LabelStruct:
    """A label pydantic accepted outside the narrow form, normalised as pydantic does.

    Raises ValueError for an integer the windows' int64 arrays cannot hold: the contract's
    ``int`` has no bound, so pydantic takes ``model_version`` 2**64, which then crashed the
    monitor when its window was judged; now the label is refused, with this reason, like any
    invalid one."""
    for name in _INT64_FIELDS:
        value = getattr(label, name)
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"{name} {value} is beyond a signed 64-bit integer")
    return LabelStruct(
        event_id=str(label.event_id),
        respondent_id=label.respondent_id,
        submitted_at=label.submitted_at.isoformat(),
        persona_id=label.persona_id,
        persona_name=label.persona_name,
        distance=label.distance,
        margin=label.margin,
        is_outlier=label.is_outlier,
        model_version=label.model_version,
        labelled_at=label.labelled_at.isoformat(),
        **{name: getattr(label, name) for name in FEATURES},
    )
