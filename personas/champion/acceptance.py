"""The one rule for whether a model may be labelled with: the stream and the REST service both
ask ``check_candidate`` before a model becomes current, so a model one of them refuses the other
refuses too (they used to check different things, and REST served models the stream refused).

The rule is a function of the candidate alone — never of the model a process happens to hold.
A rule that also trusted "the current model's ids" let two processes decide differently: a
worker that stepped through an accepted version took its retrained successors, while one that
skipped it (listener down, a registry blip, a fresh start) refused them, or — exempted as a first
model — served what the others refused. So every version carries its approvals: the trainer
writes, into each version fitted from a parent, the union of the parent's approved ids and the
ones its own job approved (trainer/publish.py).
"""

from __future__ import annotations

import numpy as np

from personas.catalogue import load_vendor_catalogue
from personas.errors import InvalidModel
from personas.model import CentroidModel

__all__ = ["APPROVED_KEY", "approved_ids", "check_candidate"]

#: Model metadata key listing every persona id a person approved (`persona train accept`) in the
#: model's lineage, carried forward by each retrain: the only ids beyond the vendor catalogue a
#: follower takes without allow_new_personas.
APPROVED_KEY = "approved_new_personas"


def approved_ids(model: CentroidModel) -> frozenset[int]:
    """The persona ids ``model``'s metadata says a person approved (none if it says nothing).

    Only integers count: the key is written by our trainer as a JSON list of ints, so anything
    else is a document we did not write and approves nothing.
    """
    listed = model.metadata.get(APPROVED_KEY) or []
    if not isinstance(listed, list):
        return frozenset()
    return frozenset(pid for pid in listed if isinstance(pid, int) and not isinstance(pid, bool))


def check_candidate(candidate: CentroidModel, *, allow_new_personas: bool) -> None:
    """Raise InvalidModel unless ``candidate`` may be labelled with.

    Three checks, each for a way a model could label customers wrongly without failing:

    * structure (``CentroidModel.validate``): shape, features, finiteness, ids match names, no
      duplicate ids, a positive outlier threshold;
    * persona identity: every persona id is in the vendor catalogue or approved by a person in
      the model's lineage (``approved_ids``), unless ``allow_new_personas``;
    * behaviour: each centroid is labelled as its own persona (two centroids at one point pass
      the structure check but would make one persona unreachable).
    """
    known: set[int] | None = None
    if not allow_new_personas:
        known = set(load_vendor_catalogue().ids) | approved_ids(candidate)
    candidate.validate(known_persona_ids=known)
    labels = candidate.label(candidate.centroids)
    if not np.array_equal(labels.persona_id, np.asarray(candidate.persona_ids)):
        raise InvalidModel("centroids are not labelled as their own persona (duplicates?)")
