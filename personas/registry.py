"""Reading persona models from the MLflow registry (the trainer writes them).

Contract: every registered version of ``settings.model_name`` comes from a run that logged
``persona_model.json`` (``CentroidModel.to_dict``) at the run's artifact root, beside the standard
MLflow model (``model/``) that anyone can load with ``mlflow.pyfunc``. Services read the JSON: it is
small, needs no unpickling and validates in microseconds. MLflow is imported lazily (≈4 s).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from personas.errors import InvalidModel, ServiceRefused, ServiceUnavailable
from personas.model import CentroidModel
from personas.settings import Settings

__all__ = [
    "MODEL_ARTIFACT",
    "REFERENCE_ARTIFACT",
    "REFUSALS",
    "bound_http_client",
    "champion_version",
    "client",
    "explain_mlflow_error",
    "load_champion",
    "load_reference",
    "load_version",
    "mlflow_unavailable",
]

MODEL_ARTIFACT = "persona_model.json"
#: The sample a version was trained on (columns x1..x10 at least), at the run's artifact root:
#: the monitor measures drift against the champion's own reference.
REFERENCE_ARTIFACT = "reference.parquet"


#: The MLFLOW_HTTP_* variables bound_http_client set in this process (the others are the user's).
_BOUND: set[str] = set()


def bound_http_client(timeout_s: float, retries: int, backoff_factor: int = 1) -> None:
    """Bound MLflow's HTTP client for this process: its defaults retry a dead server for about two
    minutes, and a service must name an outage within seconds. The one place these are set: the
    CLI calls it with general defaults, then a service with its own settings (which replace the
    CLI's); a variable the user set in the environment is never overridden."""
    import os

    wanted = {
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(int(timeout_s)) if timeout_s >= 1 else "1",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(retries),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": str(int(backoff_factor)),  # MLflow parses an int
    }
    for name, value in wanted.items():
        if name in os.environ and name not in _BOUND:
            continue  # the user's
        os.environ[name] = value
        _BOUND.add(name)


def client(settings: Settings) -> Any:
    """An MlflowClient bound to the configured tracking server (no global state touched)."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def explain_mlflow_error(exc: BaseException) -> tuple[str, str]:
    """(what happened, the fix) for an error of the MLflow client."""
    text = str(exc)
    first = text.splitlines()[0][:200] if text else type(exc).__name__
    if "401" in text or "not authenticated" in text.lower():
        return (
            "authentication failed (HTTP 401)",
            "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)",
        )
    if "403" in text or "permission" in text.lower():
        return (
            "not authorised (HTTP 403)",
            "grant the user permission on the registered model and its experiments",
        )
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return (
            "TLS: the server's certificate is not trusted",
            "set MLFLOW_TRACKING_SERVER_CERT_PATH to the CA bundle that signed it",
        )
    return first, "is the tracking server up at PERSONA_MLFLOW_TRACKING_URI? (local: `make up`)"


#: MLflow error codes that no retry changes: who we are, what we may do, a request it will never
#: accept. (RESOURCE_DOES_NOT_EXIST is not one: MLflow reports a failed download with it.)
REFUSALS = frozenset(
    {"UNAUTHENTICATED", "PERMISSION_DENIED", "INVALID_PARAMETER_VALUE", "BAD_REQUEST"}
)


def mlflow_unavailable(settings: Settings, exc: BaseException) -> ServiceUnavailable:
    """The one translation of an MLflow client failure: what happened and the fix, as an outage
    to retry, or as :class:`ServiceRefused` when MLflow answered with a refusal."""
    what, fix = explain_mlflow_error(exc)
    if getattr(exc, "error_code", None) in REFUSALS:
        return ServiceRefused("MLflow", settings.tracking_uri, what, fix)
    return ServiceUnavailable("MLflow", settings.tracking_uri, what, fix)


def champion_version(settings: Settings) -> int | None:
    """Version the champion alias points at, None if the model or alias does not exist yet."""
    from mlflow.exceptions import MlflowException

    try:
        mv = client(settings).get_model_version_by_alias(
            settings.model_name, settings.champion_alias
        )
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise mlflow_unavailable(settings, exc) from None
    except OSError as exc:
        raise mlflow_unavailable(settings, exc) from None
    return int(mv.version)


def _fetch(settings: Settings, version: int, artifact: str, folder: str) -> Path:
    """Download one artifact of a registered version's run into ``folder``.

    MLflow's run-artifact download reports *every* failure — a refused connection included — as
    RESOURCE_DOES_NOT_EXIST ("please ensure that the path is correct"). Taken at its word, an
    MLflow blip made a champion "unusable" for good (the stream and the monitor never retried it,
    the trainer recorded a retrain as failed). So the run's artifact listing, a plain REST call
    that fails as an outage, decides whether the artifact exists: not listed → InvalidModel (a
    person must look); listed but not downloadable → ServiceUnavailable (try again later).
    """
    from mlflow.exceptions import MlflowException

    mlflow_client = client(settings)
    try:
        run_id = str(mlflow_client.get_model_version(settings.model_name, str(version)).run_id)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise InvalidModel(
                f"version {version} of {settings.model_name} does not exist"
            ) from None
        raise mlflow_unavailable(settings, exc) from None
    except OSError as exc:
        raise mlflow_unavailable(settings, exc) from None
    try:
        listed = any(item.path == artifact for item in mlflow_client.list_artifacts(run_id))
    except (MlflowException, OSError) as exc:
        raise mlflow_unavailable(settings, exc) from None
    if not listed:
        raise InvalidModel(f"version {version} has no {artifact} (run {run_id})")
    try:
        return Path(mlflow_client.download_artifacts(run_id, artifact, folder))
    except (MlflowException, OSError) as exc:
        raise mlflow_unavailable(settings, exc) from None


def load_version(settings: Settings, version: int) -> CentroidModel:
    """Download and validate one registered version: InvalidModel if it is not a usable model,
    ServiceUnavailable if MLflow did not answer (never mistaken for each other)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = _fetch(settings, version, MODEL_ARTIFACT, tmp)
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InvalidModel(f"version {version}: {MODEL_ARTIFACT} is not JSON: {exc}") from None
    return CentroidModel.from_dict(document, version=version)


def load_champion(settings: Settings) -> CentroidModel | None:
    """The champion model, or None when no champion is registered yet."""
    version = champion_version(settings)
    return None if version is None else load_version(settings, version)


def load_reference(settings: Settings, version: int) -> Any:
    """The reference sample (pandas DataFrame) of a registered version; InvalidModel if absent or
    unreadable, ServiceUnavailable if MLflow did not answer."""
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        path = _fetch(settings, version, REFERENCE_ARTIFACT, tmp)
        try:
            return pd.read_parquet(path)
        except (OSError, ValueError) as exc:
            raise InvalidModel(
                f"version {version}: cannot read {REFERENCE_ARTIFACT}: {exc}"
            ) from None
