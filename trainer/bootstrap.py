"""Bootstrap: register the vendor centroids as the first model version and make it champion.

Idempotent by a version tag (``persona_source=bootstrap``): a second run finds the version and
creates nothing. If a first run died between registering and moving the alias, the second run
finishes the job through the same resume path as a retrain (trainer/publish.py: the version's
document is read back and given its number, then the alias moves and ModelUpdated goes out). An
existing champion is never moved back to the vendor centroids.

What is bootstrap's own: the centroids are the vendor's, unchanged (no fit), and the reference
sample is a real month or a synthetic one. Everything after that is ``publish``.

The reference sample is either a real month (``--reference``) or a seeded synthetic sample of
std 2.0 around each vendor centroid — how the vendor's own data were generated. The outlier
distance comes from that sample by the robust chi-square rule (trainer/fitting.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from personas.catalogue import Catalogue, load_vendor_catalogue
from personas.errors import InputFileError
from personas.model import CentroidModel
from personas.registry import champion_version
from personas.schemas import ModelUpdated
from personas.settings import Settings
from trainer import publish
from trainer.data import check_features, features_of, synthetic_sample
from trainer.gate import silhouette
from trainer.job import Job, open_job
from trainer.settings import TrainerSettings

if TYPE_CHECKING:
    import pandas as pd

    from trainer.events import Publisher

__all__ = ["BootstrapResult", "bootstrap"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BootstrapResult:
    version: int
    created: bool  # False: a bootstrap version already existed
    update: ModelUpdated | None  # set when this call moved the champion alias


def bootstrap(
    settings: Settings,
    reference: pd.DataFrame | None = None,
    *,
    trainer_settings: TrainerSettings | None = None,
    catalogue: Catalogue | None = None,
    publisher: Publisher | None = None,
    reference_label: str = "dataframe",
) -> BootstrapResult:
    """Register the vendor centroids once; returns the bootstrap version (new or existing)."""
    # Same per-model lock as retraining: two concurrent bootstraps cannot both register.
    with open_job(settings, trainer_settings, publisher=publisher) as job:
        return _bootstrap(job, reference, catalogue, reference_label)


def _bootstrap(
    job: Job, reference: pd.DataFrame | None, catalogue: Catalogue | None, reference_label: str
) -> BootstrapResult:
    existing = publish.registered_by(job, "bootstrap")
    if existing is not None:
        update = None
        if champion_version(job.settings) is None:
            update = publish.resume(job, existing, "bootstrap resumed").update
        log.info("bootstrap version %d already exists; nothing registered", existing.version)
        return BootstrapResult(version=existing.version, created=False, update=update)
    fitted = _vendor(job, reference, catalogue or load_vendor_catalogue(), reference_label)
    done = publish.publish(job, fitted, "bootstrap", only_if_no_champion=True)
    return BootstrapResult(version=done.version, created=True, update=done.update)


def _vendor(
    job: Job, reference: pd.DataFrame | None, catalogue: Catalogue, reference_label: str
) -> publish.Fitted:
    """The vendor centroids with the reference sample they are published with."""
    ts = job.ts
    if reference is None:
        frame = synthetic_sample(catalogue, ts.bootstrap_rows, ts.bootstrap_std, ts.bootstrap_seed)
        source = (
            f"synthetic: {ts.bootstrap_rows} rows, std {ts.bootstrap_std}, seed {ts.bootstrap_seed}"
        )
    else:
        frame = check_features(reference, reference_label)
        source = f"{reference_label}: {len(frame)} rows"
    if len(frame) < catalogue.centroids.shape[0] * 2:
        raise InputFileError(f"reference {reference_label} has only {len(frame)} usable rows")

    vendor = CentroidModel.from_catalogue(catalogue)
    x = features_of(frame)
    labels = vendor.label(x).index
    sample = np.random.default_rng(ts.seed).permutation(len(x))[: ts.silhouette_rows]
    return publish.Fitted(
        source="bootstrap",
        personas=vendor,
        frame=frame,
        labels=labels,
        run_name="bootstrap-vendor-centroids",
        params={
            "source": "vendor",
            "reference": source,
            "k": vendor.n_personas,
            "outlier_quantile": ts.outlier_quantile,
            "model_name": job.model_name,
        },
        metadata={"source": "vendor", "reference": source},
        metrics={"n_reference": float(len(frame)), "silhouette": silhouette(x, labels, sample)},
    )
