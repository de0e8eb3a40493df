"""Retrain cost end to end, beside the original project's way of fitting and logging.

In one run, against the local stack, on a scratch schema, topics and model name (all removed):

  * ours: ``handle_command`` on N labelled rows — PostgreSQL load, KMeans from the champion's
    centroids, optimal assignment, silhouette gate on a 3,000-row sample, k+1 candidate check,
    one MLflow run (params, metrics, centroid shift, reference, sklearn model with explicit
    pip requirements), register, move the alias, publish ModelUpdated;
  * baseline: the original pipeline's fit and log on the same rows — ``KMeans(k, n_init=10)``
    from scratch (sklearn default start) and ``mlflow.sklearn.log_model`` with the pip
    requirements *inferred* (mlflow's default), no gate, no identity matching, no registration.

    .venv/bin/python bench/trainer_retrain.py [--events 20000]
"""

from __future__ import annotations

import argparse
import contextlib
import time
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np

from personas import db
from personas.catalogue import FEATURES, load_vendor_catalogue
from personas.kafka import admin_config, ensure_topics, topic_specs
from personas.model import CentroidModel
from personas.schemas import RetrainCommand, utc_now
from personas.settings import Settings, TopicNames
from trainer.bootstrap import bootstrap
from trainer.data import features_of, load_range
from trainer.retrain import handle_command
from trainer.settings import TrainerSettings

START = datetime(2025, 3, 1, tzinfo=UTC)


def scratch_settings() -> Settings:
    u = uuid.uuid4().hex[:8]
    return Settings().model_copy(
        update={
            "topics": TopicNames.private(f"bench-{u}"),
            "pg_schema": f"bench_{u}",
            "model_name": f"bench-persona-model-{u}",
        }
    )


def insert_rows(settings: Settings, model: CentroidModel, n: int) -> None:
    rng = np.random.default_rng(3)
    which = np.arange(n) % model.n_personas
    x = model.centroids[which] + 0.5 + rng.normal(0.0, 3.1, size=(n, len(FEATURES)))
    labels = model.label(x)
    step = timedelta(days=14) / n
    now = utc_now()
    cols = ", ".join(FEATURES)
    with db.connect(settings) as conn, conn.cursor() as cur:
        with cur.copy(
            f"COPY persona_labels (event_id, respondent_id, submitted_at, {cols}, persona_id,"
            " persona_name, distance, margin, is_outlier, model_version, labelled_at) FROM STDIN"
        ) as copy:
            for i in range(n):
                copy.write_row(
                    (
                        uuid.uuid4(),
                        f"r{i}",
                        START + i * step,
                        *map(float, x[i]),
                        int(labels.persona_id[i]),
                        model.persona_names[int(labels.index[i])],
                        float(labels.distance[i]),
                        float(labels.margin[i]),
                        bool(labels.is_outlier[i]),
                        1,
                        now,
                    )
                )
        conn.commit()


def baseline(settings: Settings, x: np.ndarray, k: int) -> tuple[float, float]:
    import mlflow
    from sklearn.cluster import KMeans

    t0 = time.perf_counter()
    km = KMeans(n_clusters=k, n_init=10, random_state=42).fit(x)
    fit_s = time.perf_counter() - t0
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_experiment("bench-trainer-baseline")
    t0 = time.perf_counter()
    with mlflow.start_run(run_name="baseline-original"):
        mlflow.log_metric("inertia", km.inertia_)
        mlflow.sklearn.log_model(km, name="model")
    return fit_s, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="Labelled rows in the range.")
    args = parser.parse_args()
    settings = scratch_settings()
    ts = TrainerSettings(_env_file=None)
    ensure_topics(settings, topic_specs(settings))
    db.apply_migrations(settings)
    vendor = CentroidModel.from_catalogue(load_vendor_catalogue())
    try:
        t0 = time.perf_counter()
        bootstrap(settings, trainer_settings=ts)
        boot_s = time.perf_counter() - t0
        insert_rows(settings, vendor, args.events)
        cmd = RetrainCommand(
            command_id=uuid.uuid4(),
            range_start=START,
            range_end=START + timedelta(days=14),
            reason="bench",
            requested_by="bench",
            requested_at=utc_now(),
        )
        t0 = time.perf_counter()
        outcome = handle_command(settings, cmd, trainer_settings=ts)
        ours_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        x = features_of(
            load_range(settings, cmd.range_start, cmd.range_end, max_rows=10**7, seed=1)
        )
        load_s = time.perf_counter() - t0
        fit_s, log_s = baseline(settings, x, vendor.n_personas)
    finally:
        from confluent_kafka.admin import AdminClient

        with db.connect(settings, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{settings.pg_schema}" CASCADE')
        AdminClient(admin_config(settings)).delete_topics([s.name for s in topic_specs(settings)])
        with contextlib.suppress(Exception):
            from personas.registry import client

            client(settings).delete_registered_model(settings.model_name)
    print(
        f"rows: {args.events:,} (std 3.1, shifted +0.5), outcome: {outcome.status} v{outcome.version}"
    )
    print(f"bootstrap (5,000-row synthetic reference, first in process)  {boot_s:7.2f} s")
    print(f"ours: handle_command end to end                              {ours_s:7.2f} s")
    print(
        f"baseline: load rows {load_s:.2f} s + KMeans n_init=10 {fit_s:.2f} s + log_model inferred reqs {log_s:.2f} s = {load_s + fit_s + log_s:7.2f} s"
    )


if __name__ == "__main__":
    main()
