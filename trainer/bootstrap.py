"""Bootstrap: register the vendor centroids as the first model version and make it champion.

Idempotent by a version tag (``persona_source=bootstrap``): a second run finds the version and
creates nothing. If a first run died between registering and moving the alias, the second run
finishes the job (moves the alias, publishes ModelUpdated). An existing champion is never moved
back to the vendor centroids.

The reference sample is either a real month (``--reference``) or a seeded synthetic sample of
std 2.0 around each vendor centroid — how the vendor's own data were generated. The outlier
distance comes from that sample by the robust chi-square rule (trainer/fitting.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from personas.catalogue import Catalogue, load_vendor_catalogue
from personas.model import CentroidModel
from personas.registry import champion_version
from personas.schemas import ModelUpdated
from personas.settings import Settings
from trainer import ledger, register
from trainer.data import check_features, features_of, reference_frame, synthetic_sample
from trainer.fitting import empirical_quantile_distance, outlier_distance
from trainer.gate import silhouette
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
    from trainer.events import Publisher

    ts = trainer_settings or TrainerSettings()
    own_publisher = publisher is None
    pub = publisher or Publisher(settings)
    try:
        # Same per-model lock as retraining: two concurrent bootstraps cannot both register.
        with ledger.training_lock(settings):
            return _bootstrap(settings, ts, reference, catalogue, pub, reference_label)
    finally:
        if own_publisher:
            pub.close()


def _bootstrap(
    settings: Settings,
    ts: TrainerSettings,
    reference: pd.DataFrame | None,
    catalogue: Catalogue | None,
    pub: Publisher,
    reference_label: str,
) -> BootstrapResult:
    existing = register.versions_with_tag(settings, register.SOURCE_TAG, "bootstrap")
    if existing:
        version = existing[0]
        update = None
        if champion_version(settings) is None:
            update = register.promote(settings, _registered(settings, version), pub)
        log.info("bootstrap version %d already exists; nothing registered", version)
        return BootstrapResult(version=version, created=False, update=update)
    registered = _register_vendor(settings, ts, reference, catalogue, reference_label)
    update = None
    if champion_version(settings) is None:
        update = register.promote(settings, registered, pub)
    return BootstrapResult(version=registered.version, created=True, update=update)


def _registered(settings: Settings, version: int) -> register.Registered:
    from personas.registry import client

    mv = client(settings).get_model_version(settings.model_name, str(version))
    return register.Registered(version=version, run_id=str(mv.run_id))


def _register_vendor(
    settings: Settings,
    ts: TrainerSettings,
    reference: pd.DataFrame | None,
    catalogue: Catalogue | None,
    reference_label: str,
) -> register.Registered:
    catalogue = catalogue or load_vendor_catalogue()
    if reference is None:
        frame = synthetic_sample(catalogue, ts.bootstrap_rows, ts.bootstrap_std, ts.bootstrap_seed)
        source = (
            f"synthetic: {ts.bootstrap_rows} rows, std {ts.bootstrap_std}, seed {ts.bootstrap_seed}"
        )
    else:
        frame = check_features(reference, reference_label)
        source = f"{reference_label}: {len(frame)} rows"
    if len(frame) < catalogue.centroids.shape[0] * 2:
        from personas.errors import InputFileError

        raise InputFileError(f"reference {reference_label} has only {len(frame)} usable rows")

    vendor = CentroidModel.from_catalogue(catalogue)
    x = features_of(frame)
    labels = vendor.label(x)
    threshold = outlier_distance(x, vendor.centroids, labels.index, ts.outlier_quantile)
    model = replace(
        vendor,
        outlier_distance=threshold,
        metadata={
            "source": "vendor",
            "reference": source,
            "outlier_rule": f"robust chi-square, q={ts.outlier_quantile}",
        },
    )
    sample = np.random.default_rng(ts.seed).permutation(len(x))[: ts.silhouette_rows]
    metrics = {
        "n_reference": float(len(frame)),
        "outlier_distance": threshold,
        "outlier_distance_empirical": empirical_quantile_distance(
            x, vendor.centroids, labels.index, ts.outlier_quantile
        ),
        "outlier_share": float((labels.distance > threshold).mean()),
        "silhouette": silhouette(x, labels.index, sample),
    }
    for pid, size in zip(
        vendor.persona_ids, np.bincount(labels.index, minlength=vendor.n_personas), strict=True
    ):
        metrics[f"cluster_size_{pid}"] = float(size)
    logged = register.log_run(
        settings,
        experiment=ts.experiment,
        run_name="bootstrap-vendor-centroids",
        params={
            "source": "vendor",
            "reference": source,
            "k": vendor.n_personas,
            "outlier_quantile": ts.outlier_quantile,
            "model_name": settings.model_name,
        },
        metrics=metrics,
        tags={register.SOURCE_TAG: "bootstrap"},
        reference=reference_frame(frame, model, max_rows=ts.reference_rows, seed=ts.seed),
        centroids=model.centroids,
    )
    return register.register_run(settings, logged, model, {register.SOURCE_TAG: "bootstrap"})
