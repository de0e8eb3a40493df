"""Trainer settings (env prefix ``PERSONA_TRAINER_``); connection settings stay in personas.settings.

Every threshold of the quality gate and of persona matching is here so an operator can tune it
without code, and so each MLflow run can log the exact values that decided its fate.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["TrainerSettings"]


class TrainerSettings(BaseSettings):
    """Trainer behaviour. Env: ``PERSONA_TRAINER_<FIELD>`` (or ``.env``)."""

    model_config = SettingsConfigDict(
        env_prefix="PERSONA_TRAINER_", env_file=".env", extra="ignore", frozen=True
    )

    # MLflow
    experiment: str = Field(
        "persona-trainer", description="MLflow experiment of bootstrap and retrain runs."
    )
    explore_experiment: str = Field(
        "persona-explore", description="MLflow experiment of the best-k experiment."
    )

    # Kafka
    group_id: str = Field(
        "persona-trainer", description="Consumer group reading the retrain-commands topic."
    )
    max_poll_interval_ms: int = Field(
        900_000,
        ge=10_000,
        description="Longest a single retrain may take before Kafka considers the trainer dead.",
    )
    session_timeout_ms: int = Field(
        45_000,
        ge=6_000,
        description=(
            "How long the group waits for a trainer that stopped heartbeating (killed, host lost) "
            "before another one may take its commands."
        ),
    )
    retry_seconds: float = Field(
        5.0,
        gt=0,
        description=(
            "Pause before a command is tried again after PostgreSQL, MLflow or Kafka did not answer "
            "(the command stays uncommitted meanwhile)."
        ),
    )
    metrics_host: str = Field(
        "127.0.0.1", description="Interface of the trainer's Prometheus /metrics endpoint."
    )
    metrics_port: int = Field(
        6071,
        ge=0,
        le=65535,
        description="Port of the trainer's /metrics (distinct per trainer; 0 turns it off).",
    )

    # Bootstrap
    bootstrap_rows: int = Field(
        5000, ge=100, description="Rows of the synthetic bootstrap reference (no --reference)."
    )
    bootstrap_std: float = Field(
        2.0, gt=0, description="Std of the synthetic reference around each vendor centroid."
    )
    bootstrap_seed: int = Field(42, description="Seed of the synthetic bootstrap reference.")

    # Retraining
    init: Literal["champion", "k-means++"] = Field(
        "champion",
        description="KMeans start: the champion's centroids (default) or k-means++ (cold start).",
    )
    seed: int = Field(42, description="Seed of KMeans, silhouette sampling and reference sampling.")
    max_train_rows: int = Field(
        200_000, ge=100, description="Rows sampled from the range when it holds more."
    )
    reference_rows: int = Field(
        5000, ge=100, description="Rows of the training data stored as the reference sample."
    )
    outlier_quantile: float = Field(
        0.999, gt=0.5, lt=1, description="Share of in-persona records inside the outlier distance."
    )

    # Quality gate
    min_samples: int = Field(300, ge=2, description="Fewest rows a retrain may use.")
    min_cluster_size: int = Field(
        20, ge=1, description="Fewest rows every cluster must get (no empty or near-empty cluster)."
    )
    silhouette_margin: float = Field(
        0.05,
        ge=0,
        description="New silhouette may be at most this much below the champion's on the same data.",
    )
    silhouette_rows: int = Field(
        3000, ge=100, description="Rows sampled for silhouette (it is O(n²))."
    )

    # Persona identity
    match_fraction: float = Field(
        0.5,
        gt=0,
        le=1,
        description=(
            "A new centroid keeps a persona's identity only if it lies within this fraction of the "
            "smallest distance between two champion centroids; beyond it it is a candidate persona."
        ),
    )
    check_extra_cluster: bool = Field(
        True, description="Also fit k+1 clusters to spot a new group the k-fit would absorb."
    )
    min_candidate_share: float = Field(
        0.05, gt=0, lt=1, description="Smallest share of the data an extra cluster must hold."
    )
