"""The same record gets the same label from the REST service and from the stream: both serve the
registry's champion through the one labelling rule (personas.model), in separate processes."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from infra.demo.services import ChildService, persona_argv
from infra.stack.process import free_port
from personas import db
from personas.catalogue import FEATURES, load_vendor_catalogue
from personas.settings import Settings, settings_env
from producer.generator import MonthSpec, generate_month
from producer.publisher import publish_rows
from trainer.bootstrap import bootstrap

pytestmark = pytest.mark.e2e
N = 300


@pytest.mark.timeout(300)
def test_rest_and_stream_agree(isolated_settings: Settings, tmp_path: Path):
    settings = isolated_settings
    version = bootstrap(settings).version
    # wider noise than the vendor's: plenty of outliers and small margins to disagree on
    rows = generate_month(MonthSpec("2025-03", N, 4.0, 7), load_vendor_catalogue())
    env = settings_env(settings)
    env["PERSONA_STREAM_STATE_DIR"] = str(tmp_path / "stream")
    stream_port, rest_port = free_port(), free_port()
    stream = ChildService(
        "stream",
        persona_argv(
            "stream",
            "--app-id",
            f"rest-vs-stream-{settings.pg_schema}",
            "--web-port",
            str(stream_port),
        ),
        tmp_path / "stream.log",
        env,
    )
    rest = ChildService(
        "serve",
        persona_argv("serve", "--port", str(rest_port), "--workers", "1"),
        tmp_path / "serve.log",
        env,
    )
    try:
        stream.start()
        rest.start()
        stream.wait_for_log("persona stream worker ready", 120)
        rest.wait_for_http(f"http://127.0.0.1:{rest_port}/health", 120)
        assert publish_rows(settings, rows).sent == N
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with db.connect(settings) as conn:
                stored = conn.execute(
                    "SELECT respondent_id, persona_id, persona_name, distance, margin,"
                    " is_outlier, model_version FROM persona_labels"
                ).fetchall()
            if len(stored) >= N:
                break
            time.sleep(0.5)
        assert len(stored) == N
        body = json.dumps(
            [
                {"id": r.respondent_id, **{f: getattr(r, f) for f in FEATURES}}
                for r in rows.itertuples()
            ]
        ).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{rest_port}/predict",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as resp:
            answer = json.loads(resp.read())
    finally:
        stream.stop()
        rest.stop()

    by_respondent = {row[0]: row for row in stored}
    predictions = answer["predictions"]
    assert len(predictions) == N and answer["model_version"] == version
    for p in predictions:
        _, persona_id, name, distance, margin, outlier, model_version = by_respondent[p["id"]]
        assert (p["persona_id"], p["persona_name"], p["is_outlier"]) == (persona_id, name, outlier)
        assert p["model_version"] == model_version == version
        assert p["distance"] == pytest.approx(distance, abs=1e-9)
        assert p["margin"] == pytest.approx(margin, abs=1e-9)
    assert any(p["is_outlier"] for p in predictions), "the sample should contain outliers"
