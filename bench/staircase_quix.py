"""The peer: the labeller's job as a Quix Streams application, the way its documentation writes one.

    .venv-quix/bin/python bench/staircase_quix.py SOURCE SINK GROUP [--postgres]

Per message (Quix Streams has no batch API in its dataframe): pydantic validation of the raw
bytes (``SurveyResponse.model_validate_json``, the contract's model) → numpy nearest centroid of
the one event (the vendor centroids; three small numpy calls, not ``CentroidModel.label``, whose
batch machinery costs ~4× more on one row) → a PersonaLabel dict → ``to_topic`` (Quix's JSON
serializer, orjson). With ``--postgres`` the labels also go to Quix's own PostgreSQL sink
(``quixstreams.sinks.community.postgresql.PostgreSQLSink``, psycopg2 ``execute_values``,
``ON CONFLICT DO NOTHING`` on ``event_id``) into ``persona_labels`` of ``PERSONA_PG_SCHEMA``; Quix
flushes sinks and the producer before it commits offsets at each checkpoint (1 s here, the
worker's commit interval; Quix's default is 5 s).

Runs in its own virtual environment (``make bench-quix``, pins in bench/quix-constraints.txt):
quixstreams 3.28 requires confluent-kafka < 2.13 and pydantic < 2.14, older than the project's
pins. Prints ``READY`` when the first message has been processed (Quix has no assignment hook).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from personas.catalogue import load_vendor_catalogue  # noqa: E402
from personas.kafka import client_config  # noqa: E402
from personas.model import CentroidModel  # noqa: E402
from personas.schemas import SurveyResponse  # noqa: E402
from personas.settings import Settings  # noqa: E402


def main() -> None:
    import numpy as np
    from quixstreams import Application
    from quixstreams.kafka.configuration import ConnectionConfig

    source, sink, group = sys.argv[1:4]
    with_postgres = "--postgres" in sys.argv[4:]
    settings = Settings()
    model = CentroidModel.from_catalogue(load_vendor_catalogue())
    app = Application(
        broker_address=ConnectionConfig.from_librdkafka_dict(client_config(settings)),
        consumer_group=group,
        auto_offset_reset="earliest",
        commit_interval=1.0,
        use_changelog_topics=False,
        loglevel="WARNING",
    )
    sdf = app.dataframe(app.topic(source, value_deserializer="bytes"))
    ready = [False]

    centroids = model.centroids
    ids, names, threshold = model.persona_ids, model.persona_names, model.outlier_distance

    def label(raw: bytes) -> dict[str, Any]:
        event = SurveyResponse.model_validate_json(raw)
        x = np.asarray(event.features(), dtype=np.float64)
        diff = centroids - x
        sq = np.einsum("ij,ij->i", diff, diff)
        index = int(sq.argmin())
        nearest, second = np.sqrt(np.partition(sq, 1)[:2]).tolist()
        if not ready[0]:
            print("READY", flush=True)
            ready[0] = True
        return {
            "schema_version": 1,
            "event_id": str(event.event_id),
            "respondent_id": event.respondent_id,
            "submitted_at": event.submitted_at.isoformat().replace("+00:00", "Z"),
            "persona_id": ids[index],
            "persona_name": names[index],
            "distance": nearest,
            "margin": second - nearest,
            "is_outlier": nearest > threshold,
            "model_version": model.version,
            "labelled_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            **dict(zip(model.feature_names, x.tolist(), strict=True)),
        }

    sdf = sdf.apply(label)
    sdf = sdf.to_topic(app.topic(sink, value_serializer="json"))
    if with_postgres:
        from quixstreams.sinks.community.postgresql import PostgreSQLSink

        params: dict[str, Any] = dict(settings.pg_params())
        sdf = sdf.apply(lambda v: {k: val for k, val in v.items() if k != "schema_version"})
        sdf.sink(
            PostgreSQLSink(
                host=params.pop("host"),
                port=int(params.pop("port")),
                dbname=params.pop("dbname"),
                user=params.pop("user"),
                password=params.pop("password", ""),
                table_name="persona_labels",
                schema_name=settings.pg_schema,
                schema_auto_update=False,
                primary_key_columns="event_id",
                on_conflict_do_nothing=True,
                include_metadata=False,
                **params,  # sslmode and the TLS files, as the services connect
            )
        )
    app.run()


if __name__ == "__main__":
    main()
