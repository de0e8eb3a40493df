"""The one publish path (trainer/publish.py), with the registry, the ledger and Kafka faked.

What is checked is the order of the steps and what each one is given — the properties that make a
crash harmless: the alias moves only after the version and its document exist, a resumed version
gets its number before the alias moves, a version without its document is never promoted, and
the ledger is written last (and only for a command).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from personas.catalogue import FEATURES, Catalogue
from personas.champion import APPROVED_KEY
from personas.errors import InvalidModel, ServiceUnavailable
from personas.model import CentroidModel
from personas.schemas import ModelUpdated
from personas.settings import Settings
from trainer import ledger, publish, register
from trainer.data import synthetic_sample
from trainer.fitting import outlier_distance
from trainer.job import Job
from trainer.settings import TrainerSettings

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FEB = datetime(2025, 2, 1, tzinfo=UTC)
MAR = datetime(2025, 3, 1, tzinfo=UTC)


class FakePublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str | None, Any]] = []

    def publish(self, topic: str, key: str | None, event: Any) -> None:
        self.sent.append((topic, key, event))


@dataclass
class FakeRegistry:
    """MLflow and the ledger as the publish path sees them; ``calls`` is the order of steps."""

    champion: int | None = 1
    versions: dict[int, dict[str, str]] = field(default_factory=dict)
    documents: dict[int, CentroidModel] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    logged: dict[str, Any] = field(default_factory=dict)
    version_tags: dict[str, str] = field(default_factory=dict)
    finished: list[tuple[Any, ...]] = field(default_factory=list)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(register, "log_run", self.log_run)
        monkeypatch.setattr(register, "register_run", self.register_run)
        monkeypatch.setattr(register, "promote", self.promote)
        monkeypatch.setattr(register, "announce", self.announce)
        monkeypatch.setattr(register, "write_model_document", self.write_model_document)
        monkeypatch.setattr(register, "versions_with_tags", self.versions_with_tags)
        monkeypatch.setattr(register, "version_info", self.version_info)
        monkeypatch.setattr(ledger, "finish", self.finish)
        monkeypatch.setattr(publish, "champion_version", lambda _s: self.champion)
        monkeypatch.setattr(publish, "load_version", self.load_version)

    def log_run(self, _settings: Settings, **kwargs: Any) -> register.LoggedRun:
        self.calls.append("log_run")
        self.logged = kwargs
        return register.LoggedRun(run_id="run-new", model_id=None)

    def register_run(
        self, _s: Settings, logged: register.LoggedRun, model: CentroidModel, tags: dict[str, str]
    ) -> register.Registered:
        self.calls.append("register_run")
        version = max(self.versions, default=1) + 1
        self.versions[version] = dict(tags)
        self.documents[version] = model
        self.version_tags = tags
        return register.Registered(version=version, run_id=logged.run_id)

    def promote(
        self, s: Settings, registered: register.Registered, pub: Any, now: datetime | None = None
    ) -> ModelUpdated:
        self.calls.append(f"promote {registered.version}")
        previous, self.champion = self.champion, registered.version
        return self.announce(s, registered, previous, pub, now, record=False)

    def announce(
        self,
        s: Settings,
        registered: register.Registered,
        previous: int | None,
        pub: Any,
        now: datetime | None = None,
        *,
        record: bool = True,
    ) -> ModelUpdated:
        if record:
            self.calls.append(f"announce {registered.version} (previous {previous})")
        assert now is not None
        event = ModelUpdated(
            model_name=s.model_name,
            version=registered.version,
            alias=s.champion_alias,
            run_id=registered.run_id,
            previous_version=previous,
            updated_at=now,
        )
        pub.publish(s.topics.model_updates, s.model_name, event)
        return event

    def write_model_document(
        self, _s: Settings, registered: register.Registered, _model: CentroidModel
    ) -> None:
        self.calls.append(f"document {registered.version}")

    def versions_with_tags(self, _s: Settings, tags: dict[str, str]) -> list[int]:
        return sorted(
            v for v, have in self.versions.items() if all(have.get(k) == x for k, x in tags.items())
        )

    def version_info(self, _s: Settings, version: int) -> register.VersionInfo:
        return register.VersionInfo(version, f"run-{version}", self.versions[version], NOW)

    def load_version(self, _s: Settings, version: int) -> CentroidModel:
        self.calls.append(f"load {version}")
        if version not in self.documents:
            raise InvalidModel(f"version {version} has no persona_model.json (run run-{version})")
        return self.documents[version]

    def finish(self, _s: Settings, command_id: Any, status: str, detail: str, **kw: Any) -> None:
        self.calls.append(f"ledger {status}")
        self.finished.append((command_id, status, detail, kw.get("version"), kw.get("run_id")))


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeRegistry:
    found = FakeRegistry()
    found.install(monkeypatch)
    return found


@pytest.fixture
def ts() -> TrainerSettings:
    return TrainerSettings(_env_file=None, reference_rows=100)


def _job(ts: TrainerSettings, command_id: uuid.UUID | None) -> Job:
    return Job(Settings(), ts, FakePublisher(), command_id, clock=lambda: NOW)  # type: ignore[arg-type]


def _fitted(catalogue: Catalogue, *, lineage: bool) -> publish.Fitted:
    frame = synthetic_sample(catalogue, 300, 2.0, seed=3)
    vendor = CentroidModel.from_catalogue(catalogue)
    return publish.Fitted(
        source="retrain" if lineage else "bootstrap",
        personas=vendor,
        frame=frame,
        labels=vendor.label(frame[list(FEATURES)].to_numpy()).index,
        run_name="a-run",
        params={"k": 3},
        metadata={"source": "retrain" if lineage else "vendor"},
        metrics={"silhouette": 0.5},
        documents={"gate.json": {"passed": True}},
        lineage=publish.Lineage(FEB, MAR, parent_version=1) if lineage else None,
    )


def test_publish_registers_then_moves_the_alias_then_records_the_command(
    fake: FakeRegistry, ts: TrainerSettings, catalogue: Catalogue
) -> None:
    command_id = uuid.uuid4()
    job = _job(ts, command_id)
    fitted = _fitted(catalogue, lineage=True)

    done = publish.publish(job, fitted, "gate passed")

    assert fake.calls == ["log_run", "register_run", "promote 2", "ledger promoted"]
    assert (done.version, done.run_id) == (2, "run-new")
    assert fake.finished == [(command_id, "promoted", "gate passed", 2, "run-new")]
    # The model: the outlier rule from the fitted rows, the lineage and the rule in its metadata.
    x = fitted.frame[list(FEATURES)].to_numpy()
    expected = outlier_distance(x, fitted.personas.centroids, fitted.labels, ts.outlier_quantile)
    assert done.model is not None
    assert done.model.outlier_distance == pytest.approx(expected)
    assert done.model.metadata == {
        "source": "retrain",
        "command_id": str(command_id),
        "range_start": FEB.isoformat(),
        "range_end": MAR.isoformat(),
        "parent_version": 1,
        "outlier_rule": f"robust chi-square, q={ts.outlier_quantile}",
    }
    assert fake.version_tags == {
        "persona_source": "retrain",
        "command_id": str(command_id),
        "range_start": FEB.isoformat(),
        "range_end": MAR.isoformat(),
        "parent_version": "1",
    }
    assert fake.logged["tags"] == {
        "persona_source": "retrain",
        "command_id": str(command_id),
        "champion_version": "1",
        "decision": "promoted",
    }
    metrics = fake.logged["metrics"]
    assert metrics["silhouette"] == 0.5  # the job's own metrics are kept
    assert metrics["outlier_distance"] == pytest.approx(expected)
    assert {metrics[f"cluster_size_{pid}"] for pid in catalogue.ids} == {100.0}
    assert 0.0 <= metrics["outlier_share"] < 0.05
    assert done.metrics == metrics
    reference: pd.DataFrame = fake.logged["reference"]
    assert len(reference) == ts.reference_rows
    assert list(reference.columns[:12]) == [*FEATURES, "persona_id", "distance"]
    np.testing.assert_array_equal(fake.logged["centroids"], catalogue.centroids)
    # ModelUpdated carries the job's clock.
    assert done.update is not None and done.update.updated_at == NOW
    assert done.update.previous_version == 1


def test_publish_without_a_command_writes_no_ledger_and_keeps_an_existing_champion(
    fake: FakeRegistry, ts: TrainerSettings, catalogue: Catalogue
) -> None:
    fake.champion = 7  # e.g. a retrained champion: bootstrap never moves it back
    done = publish.publish(
        _job(ts, None), _fitted(catalogue, lineage=False), "bootstrap", only_if_no_champion=True
    )

    assert fake.calls == ["log_run", "register_run"]
    assert done.update is None and fake.champion == 7
    assert fake.logged["tags"] == {"persona_source": "bootstrap"}
    assert fake.version_tags == {"persona_source": "bootstrap"}

    fake.champion = None
    first = publish.publish(
        _job(ts, None), _fitted(catalogue, lineage=False), "bootstrap", only_if_no_champion=True
    )
    assert first.update is not None and fake.champion == first.version
    assert fake.finished == []


def _interrupted(
    fake: FakeRegistry, catalogue: Catalogue, command_id: uuid.UUID, *, document: bool = True
) -> register.VersionInfo:
    fake.versions[2] = {
        "persona_source": "retrain",
        "command_id": str(command_id),
        "parent_version": "1",
    }
    if document:
        fake.documents[2] = CentroidModel.from_catalogue(catalogue)
    return fake.version_info(Settings(), 2)


def test_resume_gives_the_document_its_number_before_the_alias_moves(
    fake: FakeRegistry, ts: TrainerSettings, catalogue: Catalogue
) -> None:
    command_id = uuid.uuid4()
    info = _interrupted(fake, catalogue, command_id)

    done = publish.resume(_job(ts, command_id), info, "resumed")

    assert fake.calls == ["load 2", "document 2", "promote 2", "ledger promoted"]
    assert fake.finished == [(command_id, "promoted", "resumed", 2, "run-2")]
    assert done.update is not None and done.update.previous_version == 1


def test_resume_after_the_alias_moved_says_model_updated_again(
    fake: FakeRegistry, ts: TrainerSettings, catalogue: Catalogue
) -> None:
    command_id = uuid.uuid4()
    info = _interrupted(fake, catalogue, command_id)
    fake.champion = 2  # the first attempt moved the alias; whether it announced is unknown

    done = publish.resume(_job(ts, command_id), info, "resumed")

    assert fake.calls == ["load 2", "document 2", "announce 2 (previous 1)", "ledger promoted"]
    assert done.update is not None and done.update.version == 2


def test_a_version_without_its_document_is_never_promoted(
    fake: FakeRegistry, ts: TrainerSettings, catalogue: Catalogue
) -> None:
    command_id = uuid.uuid4()
    info = _interrupted(fake, catalogue, command_id, document=False)

    with pytest.raises(InvalidModel, match=r"no persona_model\.json"):
        publish.resume(_job(ts, command_id), info, "resumed")

    assert fake.calls == ["load 2"]
    assert fake.champion == 1 and fake.finished == []


def test_registered_by_finds_this_jobs_latest_version_of_its_source(
    fake: FakeRegistry, ts: TrainerSettings
) -> None:
    mine, other = uuid.uuid4(), uuid.uuid4()
    fake.versions = {
        1: {"persona_source": "bootstrap"},
        2: {"persona_source": "retrain", "command_id": str(other)},
        3: {"persona_source": "retrain", "command_id": str(mine)},
        4: {"persona_source": "accepted", "command_id": str(mine)},
        5: {"persona_source": "retrain", "command_id": str(mine)},  # a re-sent create
    }
    job = _job(ts, mine)

    found = publish.registered_by(job, "retrain")
    assert found is not None and found.version == 5
    accepted = publish.registered_by(job, "accepted")
    assert accepted is not None and accepted.version == 4
    bootstrap = publish.registered_by(_job(ts, None), "bootstrap")
    assert bootstrap is not None and bootstrap.version == 1
    assert publish.registered_by(_job(ts, uuid.uuid4()), "retrain") is None


@pytest.mark.parametrize(
    ("parent", "current", "expected"),
    [
        ("1", 1, False),  # the champion it refits: promote it
        ("1", 5, False),  # it is the champion already (version 5 below): finish it
        ("1", 3, True),  # the champion moved on meanwhile: leave it
        (None, 3, False),  # bootstrap: no parent
    ],
)
def test_superseded(parent: str | None, current: int, expected: bool) -> None:
    tags = {} if parent is None else {"parent_version": parent}
    info = register.VersionInfo(5, "run-5", tags, NOW)
    assert publish.superseded(info, current) is expected


def test_job_alert_names_the_model_and_the_command_and_uses_the_clock(ts: TrainerSettings) -> None:
    command_id = uuid.uuid4()
    job = _job(ts, command_id)
    job.alert("gate_failed", "too few rows", {"run_id": "r"})
    nameless = _job(ts, None)
    nameless.alert("retrain_failed", "not a command")

    pub = job.publisher
    assert isinstance(pub, FakePublisher)
    ((topic, key, event),) = pub.sent
    assert (topic, key) == (job.settings.topics.alerts, f"trainer:{command_id}")
    assert event.command_id == command_id and event.created_at == NOW
    assert event.details == {"model_name": job.model_name, "run_id": "r"}
    other = nameless.publisher
    assert isinstance(other, FakePublisher)
    assert other.sent[0][1] == "trainer:invalid-command" and other.sent[0][2].command_id is None


def test_record_failure_writes_the_ledger_before_the_alert(
    fake: FakeRegistry, ts: TrainerSettings
) -> None:
    """Ledger first: if PostgreSQL is down the command is retried and no alert went out for it."""
    from trainer.retrain import record_failure

    command_id = uuid.uuid4()
    job = _job(ts, command_id)
    outcome = record_failure(job, "champion version 1 is unusable: x", 1)

    assert fake.finished == [
        (command_id, "failed", "champion version 1 is unusable: x", None, None)
    ]
    pub = job.publisher
    assert isinstance(pub, FakePublisher)
    assert [e.kind for _, _, e in pub.sent] == ["retrain_failed"]
    assert (outcome.status, outcome.champion_version) == ("failed", 1)


def test_bootstrap_resumes_an_existing_version_only_without_a_champion(
    fake: FakeRegistry, ts: TrainerSettings, catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first bootstrap that died before the alias moved is finished through ``resume``: its
    document is completed before the alias moves (the old copy of this path promoted it as it
    was) and a version without its document is refused."""
    from trainer import bootstrap as boot

    monkeypatch.setattr(boot, "champion_version", lambda _s: fake.champion)
    fake.versions[1] = {"persona_source": "bootstrap"}
    fake.documents[1] = CentroidModel.from_catalogue(catalogue)
    fake.champion = None

    result = boot._bootstrap(_job(ts, None), None, catalogue, "dataframe")

    assert (result.version, result.created) == (1, False)
    assert fake.calls == ["load 1", "document 1", "promote 1"]
    assert result.update is not None and fake.finished == []

    fake.calls.clear()
    assert boot._bootstrap(_job(ts, None), None, catalogue, "dataframe").update is None
    assert fake.calls == []  # a champion exists: nothing is touched

    fake.champion = None
    del fake.documents[1]
    with pytest.raises(InvalidModel):
        boot._bootstrap(_job(ts, None), None, catalogue, "dataframe")
    assert fake.champion is None


def test_version_info_turns_an_mlflow_error_into_an_outage(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bootstrap's own copy of this lookup let MLflow's exception through raw."""
    from mlflow.exceptions import MlflowException

    class Refusing:
        def get_model_version(self, *_a: object) -> None:
            raise MlflowException("API request failed: connection refused")

    monkeypatch.setattr(register, "client", lambda _s: Refusing())
    with pytest.raises(ServiceUnavailable, match="MLflow"):
        register.version_info(Settings(), 1)


def test_versions_with_tags_needs_every_tag(monkeypatch: pytest.MonkeyPatch) -> None:
    @dataclass
    class Version:
        version: str
        tags: dict[str, str]

    class Listing:
        def search_model_versions(self, _query: str) -> list[Version]:
            return [
                Version("3", {"a": "1", "b": "2"}),
                Version("1", {"a": "1"}),
                Version("2", {"a": "1", "b": "2"}),
            ]

    monkeypatch.setattr(register, "client", lambda _s: Listing())
    assert register.versions_with_tags(Settings(), {"a": "1", "b": "2"}) == [2, 3]
    assert register.versions_with_tags(Settings(), {"a": "1"}) == [1, 2, 3]
    assert json.dumps(register.versions_with_tags(Settings(), {"c": "x"})) == "[]"


def test_a_refit_carries_its_parents_approvals_with_its_own(
    ts: TrainerSettings, catalogue: Catalogue
) -> None:
    """Followers judge a version by its own metadata, so approvals travel down the lineage."""
    fitted = _fitted(catalogue, lineage=True)
    assert fitted.lineage is not None
    lineage = replace(fitted.lineage, parent_approved=frozenset({42}))
    job = _job(ts, uuid.uuid4())
    inherited, _ = publish.finished_model(job, replace(fitted, lineage=lineage))
    assert inherited.metadata[APPROVED_KEY] == [42]
    own = replace(fitted, lineage=lineage, metadata={APPROVED_KEY: [50, 7]})
    both, _ = publish.finished_model(job, own)
    assert both.metadata[APPROVED_KEY] == [7, 42, 50]
    plain, _ = publish.finished_model(job, fitted)
    assert APPROVED_KEY not in plain.metadata
