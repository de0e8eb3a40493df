"""registry.load_version / load_reference tell an MLflow outage from a version that really lacks
its document.

MLflow's run-artifact download says RESOURCE_DOES_NOT_EXIST for any failure, a refused connection
included; taken at its word, the trainer recorded a retrain as ``failed`` because MLflow blinked
(tests/integration/trainer/test_trainer_faults.py cuts the real link), and the stream worker and
the monitor marked the champion unusable for good. A fake client is enough to pin each branch.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST

from personas import registry
from personas.errors import InvalidModel, ServiceRefused, ServiceUnavailable
from personas.model import CentroidModel
from personas.registry import MODEL_ARTIFACT, REFERENCE_ARTIFACT
from personas.settings import Settings
from trainer.service import is_transient


def _document() -> dict[str, Any]:
    model = CentroidModel(
        centroids=np.eye(3, 10),
        persona_ids=(0, 1, 2),
        persona_names=("a", "b", "c"),
        outlier_distance=10.0,
    )
    pending = model.to_dict()
    pending["version"] = None  # as register_run logs it before the version exists
    return pending


class FakeClient:
    def __init__(
        self, listed: list[str], download: str | Exception, listing: Exception | None = None
    ) -> None:
        self.listed, self.download, self.listing = listed, download, listing

    def get_model_version(self, name: str, version: str) -> Any:
        return SimpleNamespace(run_id="run-1")

    def list_artifacts(self, run_id: str) -> list[Any]:
        if self.listing is not None:
            raise self.listing
        return [SimpleNamespace(path=p) for p in self.listed]

    def download_artifacts(self, run_id: str, path: str, dst: str) -> str:
        if isinstance(self.download, Exception):
            raise self.download
        out = Path(dst) / path
        out.write_text(self.download)
        return str(out)


@pytest.fixture
def use(monkeypatch: pytest.MonkeyPatch) -> Any:
    def install(fake: FakeClient) -> Settings:
        monkeypatch.setattr(registry, "client", lambda settings: fake)
        return Settings(_env_file=None)

    return install


#: What MLflow raises when the artifact GET was refused (runs_artifact_repo.py).
SWALLOWED = MlflowException(
    "Failed to download artifacts from path 'persona_model.json', please ensure that the path is "
    "correct.",
    error_code=RESOURCE_DOES_NOT_EXIST,
)


def test_a_listed_document_that_cannot_be_downloaded_is_an_outage(use: Any) -> None:
    settings = use(FakeClient([MODEL_ARTIFACT], SWALLOWED))
    with pytest.raises(ServiceUnavailable) as caught:
        registry.load_version(settings, 2)
    assert is_transient(caught.value)


def test_a_listing_that_fails_is_an_outage(use: Any) -> None:
    refused = MlflowException(
        "API request to http://x/api/2.0/mlflow/runs/get failed with exception"
    )
    settings = use(FakeClient([], SWALLOWED, listing=refused))
    with pytest.raises(ServiceUnavailable):
        registry.load_version(settings, 2)


def test_a_document_that_is_not_listed_is_an_unusable_version(use: Any) -> None:
    settings = use(FakeClient(["reference.parquet"], SWALLOWED))
    with pytest.raises(InvalidModel, match=r"version 2 has no persona_model\.json"):
        registry.load_version(settings, 2)


def test_a_malformed_document_is_an_unusable_version(use: Any) -> None:
    settings = use(FakeClient([MODEL_ARTIFACT], "{not json"))
    with pytest.raises(InvalidModel, match="not JSON"):
        registry.load_version(settings, 2)


def test_a_pending_document_loads_with_the_registry_version(use: Any) -> None:
    settings = use(FakeClient([MODEL_ARTIFACT], json.dumps(_document())))
    model = registry.load_version(settings, 2)
    assert model.version == 2 and model.persona_ids == (0, 1, 2)


def test_a_reference_that_cannot_be_downloaded_is_an_outage(use: Any) -> None:
    settings = use(FakeClient([MODEL_ARTIFACT, REFERENCE_ARTIFACT], SWALLOWED))
    with pytest.raises(ServiceUnavailable):
        registry.load_reference(settings, 2)


def test_a_reference_that_is_not_listed_is_an_unusable_version(use: Any) -> None:
    settings = use(FakeClient([MODEL_ARTIFACT], SWALLOWED))
    with pytest.raises(InvalidModel, match=r"version 2 has no reference\.parquet"):
        registry.load_reference(settings, 2)


def test_a_version_that_does_not_exist_is_unusable(use: Any) -> None:
    class Missing(FakeClient):
        def get_model_version(self, name: str, version: str) -> Any:
            raise MlflowException("no such version", error_code=RESOURCE_DOES_NOT_EXIST)

    settings = use(Missing([], SWALLOWED))
    with pytest.raises(InvalidModel, match="does not exist"):
        registry.load_version(settings, 9)


def _mlflow_http_error(status: int, body: str) -> MlflowException:
    """The exception MLflow's own REST layer raises for an HTTP answer (a non-JSON body)."""
    from types import SimpleNamespace

    from mlflow.utils.rest_utils import verify_rest_response

    response = SimpleNamespace(status_code=status, text=body)
    with pytest.raises(MlflowException) as caught:
        verify_rest_response(response, "/api/2.0/mlflow/artifacts/list")
    return caught.value


@pytest.mark.parametrize(
    ("status", "what"),
    [(403, "not authorised (HTTP 403)"), (401, "authentication failed (HTTP 401)")],
)
def test_a_refusal_is_not_an_outage_to_retry_forever(use: Any, status: int, what: str) -> None:
    settings = use(FakeClient([], SWALLOWED, listing=_mlflow_http_error(status, "denied")))
    with pytest.raises(ServiceRefused) as caught:
        registry.load_version(settings, 2)
    assert what in str(caught.value)
    assert isinstance(caught.value, ServiceUnavailable)  # the CLI and the services: same line
    assert not is_transient(caught.value)  # the trainer: the command fails, with an alert


def test_a_server_error_stays_an_outage(use: Any) -> None:
    settings = use(FakeClient([], SWALLOWED, listing=_mlflow_http_error(503, "overloaded")))
    with pytest.raises(ServiceUnavailable) as caught:
        registry.load_version(settings, 2)
    assert not isinstance(caught.value, ServiceRefused)
    assert is_transient(caught.value)


def test_the_trainer_translates_mlflow_failures_the_same_way() -> None:
    from trainer.register import unavailable

    settings = Settings(_env_file=None)
    refused = unavailable(settings, _mlflow_http_error(403, "denied"))
    assert isinstance(refused, ServiceRefused)
    assert "grant the user permission" in str(refused)
    assert type(unavailable(settings, ConnectionError("refused"))) is ServiceUnavailable
