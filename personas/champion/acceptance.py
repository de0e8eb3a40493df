"""The one rule for whether a model may be labelled with: the stream and the REST service both
ask ``check_candidate`` before a model becomes current, so a model one of them refuses the other
refuses too (they used to check different things, and REST served models the stream refused)."""

from __future__ import annotations

import numpy as np

from personas.catalogue import load_vendor_catalogue
from personas.errors import InvalidModel
from personas.model import CentroidModel

__all__ = ["APPROVED_KEY", "check_candidate"]

#: Model metadata key listing the persona ids a person approved (`persona train accept`, written
#: into the model by the trainer): the only new ids a follower takes without allow_new_personas.
APPROVED_KEY = "approved_new_personas"


def check_candidate(
    candidate: CentroidModel, current: CentroidModel | None, *, allow_new_personas: bool
) -> None:
    """Raise InvalidModel unless ``candidate`` can safely replace ``current``.

    Three checks, each for a way a model could label customers wrongly without failing:

    * structure (``CentroidModel.validate``): shape, features, finiteness, ids match names, no
      duplicate ids, a positive outlier threshold;
    * persona identity: every persona id is known — the vendor catalogue, the current model (if
      any), or approved by a person — unless ``allow_new_personas``;
    * behaviour: each centroid is labelled as its own persona (two centroids at one point pass
      the structure check but would make one persona unreachable).
    """
    known: set[int] | None = None
    if not allow_new_personas:
        known = set(load_vendor_catalogue().ids)
        if current is not None:
            known |= set(current.persona_ids)
        approved = candidate.metadata.get(APPROVED_KEY) or []
        known |= {int(pid) for pid in approved if isinstance(pid, int)}
    candidate.validate(known_persona_ids=known)
    labels = candidate.label(candidate.centroids)
    if not np.array_equal(labels.persona_id, np.asarray(candidate.persona_ids)):
        raise InvalidModel("centroids are not labelled as their own persona (duplicates?)")
