"""MLflow side of the trainer: log a run, register a version, move the champion alias.

These are the registry's steps one by one; the order in which a model goes through them (and how
an interrupted job resumes) is trainer/publish.py, the one path bootstrap, retrain and accept use.

The registry contract (personas/registry.py) for every version of ``settings.model_name``:
the run logged ``persona_model.json`` (CentroidModel.to_dict, ``version`` = the registry version),
``reference.parquet`` (the training sample, x1..x10, persona_id, distance) and a standard MLflow
model ``model`` (an sklearn KMeans holding the centroids: ``predict`` returns the persona *index*,
i.e. the row of ``persona_ids`` in persona_model.json and in the version tag ``persona_ids``).

Calls are kept few: one ``log_batch`` for params and metrics, one upload per artifact, and
``log_model`` with explicit ``pip_requirements`` (inferring them costs 6–10 s, docs/facts.md "MLflow 3.17").
``persona_model.json`` is logged twice: once *before* ``create_model_version`` with ``version`` =
null, so a registered version never lacks its document (a trainer stopped between the two calls
leaves a version the resumed command can finish), and once after, with the version number, which
only then is known. Nobody reads it before the alias moves, which happens last, and readers pass
the version explicitly (``load_version``).

Models are read with ``personas.registry.load_version``, which tells an MLflow outage from a
missing document (MLflow's download calls both "does not exist"), so a retrain is never recorded
as failed because MLflow blinked.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from personas.catalogue import FEATURES
from personas.errors import ServiceUnavailable
from personas.model import CentroidModel
from personas.registry import (
    MODEL_ARTIFACT,
    REFERENCE_ARTIFACT,
    champion_version,
    client,
    mlflow_unavailable,
)
from personas.schemas import ModelUpdated, utc_now
from personas.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

    from trainer.events import Publisher

__all__ = [
    "SOURCE_TAG",
    "LoggedRun",
    "Registered",
    "VersionInfo",
    "announce",
    "experiment_id",
    "log_run",
    "mlflow_for",
    "promote",
    "register_run",
    "run_document",
    "run_tags",
    "unavailable",
    "version_info",
    "versions_with_tags",
    "write_model_document",
]

log = logging.getLogger(__name__)

#: Version (and run) tag saying where a version came from: "bootstrap", "retrain" or "accepted".
SOURCE_TAG = "persona_source"


@dataclass(frozen=True)
class Registered:
    version: int
    run_id: str


@dataclass(frozen=True)
class VersionInfo:
    """A registered version as the registry describes it: its run, tags and registration time."""

    version: int
    run_id: str
    tags: dict[str, str]
    created: datetime

    @property
    def registered(self) -> Registered:
        return Registered(version=self.version, run_id=self.run_id)


@dataclass(frozen=True)
class LoggedRun:
    run_id: str
    model_id: str | None  # the MLflow 3 LoggedModel of ``model``, when one was logged


def mlflow_for(settings: Settings) -> Any:
    """The mlflow module pointed at our server (set inside commands, never at import)."""
    import mlflow

    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    return mlflow


def unavailable(settings: Settings, exc: Exception) -> ServiceUnavailable:
    """MLflow did not answer: an outage the trainer retries; or it refused (credentials,
    permissions, a request it will never accept): ServiceRefused, which fails the command."""
    return mlflow_unavailable(settings, exc)


def experiment_id(settings: Settings, name: str) -> str:
    """Id of the named experiment, created on first use (tolerates a concurrent creator)."""
    from mlflow.exceptions import MlflowException

    mlflow_client = client(settings)
    try:
        found = mlflow_client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        try:
            return str(mlflow_client.create_experiment(name))
        except MlflowException:
            found = mlflow_client.get_experiment_by_name(name)
            if found is None:
                raise
            return str(found.experiment_id)
    except (MlflowException, OSError) as exc:
        raise unavailable(settings, exc) from None


def _sklearn_model(centroids: np.ndarray) -> Any:
    """A KMeans whose cluster_centers_ are exactly ``centroids`` (fit on them, one step)."""
    import pandas as pd
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=centroids.shape[0], init=centroids, n_init=1, max_iter=1)
    # Fitted on named columns so pyfunc callers passing x1..x10 get no feature-name warning.
    return km.fit(pd.DataFrame(centroids, columns=list(FEATURES)))


def _pip_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("scikit-learn", "numpy", "scipy", "skops")]


def _signature() -> Any:
    from mlflow.models.signature import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("double", name) for name in FEATURES]),
        outputs=Schema([ColSpec("integer")]),
    )


def log_run(
    settings: Settings,
    *,
    experiment: str,
    run_name: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    tags: dict[str, str],
    documents: dict[str, Any] | None = None,
    reference: pd.DataFrame | None = None,
    centroids: np.ndarray | None = None,
) -> LoggedRun:
    """One finished run with params, metrics, JSON documents, the reference and the sklearn model.

    ``centroids`` given → the standard MLflow model is logged as ``model``.
    """
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.exceptions import MlflowException

    mlflow = mlflow_for(settings)
    mlflow_client = client(settings)
    exp = experiment_id(settings, experiment)
    try:
        run = mlflow_client.create_run(exp, run_name=run_name, tags=tags)
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        mlflow_client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items() if np.isfinite(v)],
            params=[Param(k, str(v)[:6000]) for k, v in params.items()],
            tags=[RunTag("mlflow.runName", run_name)],
        )
        for name, document in (documents or {}).items():
            mlflow_client.log_dict(run_id, document, name)
        if reference is not None:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / REFERENCE_ARTIFACT
                reference.to_parquet(path, index=False)
                mlflow_client.log_artifact(run_id, str(path))
        model_id = None
        if centroids is not None:
            with mlflow.start_run(run_id=run_id):
                info = mlflow.sklearn.log_model(
                    _sklearn_model(centroids),
                    name="model",
                    signature=_signature(),
                    pip_requirements=_pip_requirements(),
                )
            model_id = info.model_id
        else:
            mlflow_client.set_terminated(run_id)
    except (MlflowException, OSError) as exc:
        raise unavailable(settings, exc) from None
    return LoggedRun(run_id=str(run_id), model_id=model_id)


def _ensure_registered_model(settings: Settings) -> None:
    from mlflow.exceptions import MlflowException

    mlflow_client = client(settings)
    try:
        mlflow_client.get_registered_model(settings.model_name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        try:
            mlflow_client.create_registered_model(
                settings.model_name,
                description=(
                    "Persona model of Persona Stream: nearest centroid in x1..x10. "
                    f"Alias '{settings.champion_alias}' is the serving version; each version's "
                    f"run holds {MODEL_ARTIFACT}, {REFERENCE_ARTIFACT} and the sklearn model."
                ),
            )
        except MlflowException as again:
            if again.error_code != "RESOURCE_ALREADY_EXISTS":
                raise


def register_run(
    settings: Settings, logged: LoggedRun, model: CentroidModel, tags: dict[str, str]
) -> Registered:
    """Register the run's ``model`` as a new version and log its persona_model.json."""
    from mlflow.exceptions import MlflowException

    mlflow_client = client(settings)
    try:
        _ensure_registered_model(settings)
        run_id, model_id = logged.run_id, logged.model_id
        source = f"models:/{model_id}" if model_id else f"runs:/{run_id}/model"
        version_tags = {
            **tags,
            "persona_ids": json.dumps(list(model.persona_ids)),
            "persona_names": json.dumps(list(model.persona_names)),
            "outlier_distance": f"{model.outlier_distance:.6f}",
        }
        pending = model.to_dict()
        pending["version"] = None  # not registered yet; see the module docstring
        mlflow_client.log_dict(run_id, pending, MODEL_ARTIFACT)
        mv = mlflow_client.create_model_version(
            settings.model_name, source, run_id=run_id, tags=version_tags, model_id=model_id
        )
        version = int(mv.version)
    except (MlflowException, OSError) as exc:
        raise unavailable(settings, exc) from None
    registered = Registered(version=version, run_id=run_id)
    write_model_document(settings, registered, model)
    log.info("registered %s version %d (run %s)", settings.model_name, version, run_id)
    return registered


def write_model_document(settings: Settings, registered: Registered, model: CentroidModel) -> None:
    """(Re)write the version's persona_model.json with its version number: the last step of a
    registration, and what a resumed command repeats (overwriting is harmless)."""
    from mlflow.exceptions import MlflowException

    document = replace(model, version=registered.version).to_dict()
    try:
        client(settings).log_dict(registered.run_id, document, MODEL_ARTIFACT)
    except (MlflowException, OSError) as exc:
        raise unavailable(settings, exc) from None


def promote(
    settings: Settings,
    registered: Registered,
    publisher: Publisher,
    now: datetime | None = None,
) -> ModelUpdated | None:
    """Point the champion alias at ``registered`` and publish ModelUpdated — only if it moved."""
    from mlflow.exceptions import MlflowException

    previous = champion_version(settings)
    if previous == registered.version:
        return None
    try:
        client(settings).set_registered_model_alias(
            settings.model_name, settings.champion_alias, str(registered.version)
        )
    except (MlflowException, OSError) as exc:
        raise unavailable(settings, exc) from None
    event = announce(settings, registered, previous, publisher, now)
    log.info(
        "%s@%s: %s -> %d",
        settings.model_name,
        settings.champion_alias,
        previous,
        registered.version,
    )
    return event


def announce(
    settings: Settings,
    registered: Registered,
    previous: int | None,
    publisher: Publisher,
    now: datetime | None = None,
) -> ModelUpdated:
    """Publish ModelUpdated for a champion that has moved. A message only wakes its consumers,
    who re-read the alias (personas.champion), so saying it twice (a resumed command cannot know
    whether the first attempt got this far) is harmless."""
    event = ModelUpdated(
        model_name=settings.model_name,
        version=registered.version,
        alias=settings.champion_alias,
        run_id=registered.run_id,
        previous_version=previous,
        updated_at=now or utc_now(),
    )
    publisher.publish(settings.topics.model_updates, settings.model_name, event)
    return event


def versions_with_tags(settings: Settings, tags: dict[str, str]) -> list[int]:
    """Registered versions of the model carrying every one of ``tags`` (ascending)."""
    from mlflow.exceptions import MlflowException

    try:
        found = client(settings).search_model_versions(f"name = '{settings.model_name}'")
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return []
        raise unavailable(settings, exc) from None
    except OSError as exc:
        raise unavailable(settings, exc) from None
    return sorted(
        int(mv.version)
        for mv in found
        if all(mv.tags.get(key) == value for key, value in tags.items())
    )


def run_document(settings: Settings, run_id: str, name: str) -> Any:
    """A JSON document a run logged (e.g. ``candidates.json`` of a held retrain)."""
    from mlflow.exceptions import MlflowException

    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = client(settings).download_artifacts(run_id, name, tmp)
            return json.loads(Path(path).read_text())
    except (MlflowException, OSError, ValueError) as exc:
        raise unavailable(settings, exc) from None


def run_tags(settings: Settings, run_id: str) -> dict[str, str]:
    from mlflow.exceptions import MlflowException

    try:
        return dict(client(settings).get_run(run_id).data.tags)
    except (MlflowException, OSError) as exc:
        raise unavailable(settings, exc) from None


def version_info(settings: Settings, version: int) -> VersionInfo:
    """One registered version: its run (what ``promote`` needs), tags and registration time."""
    from mlflow.exceptions import MlflowException

    try:
        mv = client(settings).get_model_version(settings.model_name, str(version))
    except (MlflowException, OSError) as exc:
        raise unavailable(settings, exc) from None
    return VersionInfo(
        version=version,
        run_id=str(mv.run_id),
        tags=dict(mv.tags),
        created=datetime.fromtimestamp(int(mv.creation_timestamp) / 1000, tz=UTC),
    )
