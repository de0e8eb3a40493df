"""Export the JSON Schema of every topic's messages, so other teams can consume the topics."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, TypeAdapter

from personas.schemas import TOPIC_SCHEMAS

__all__ = ["topic_json_schemas", "write_schemas"]


def topic_json_schemas() -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for topic, model in TOPIC_SCHEMAS.items():
        if isinstance(model, TypeAdapter):
            schema = model.json_schema()
        else:
            assert issubclass(model, BaseModel)
            schema = model.model_json_schema()
        schema["$id"] = f"persona-stream/{topic}.schema.json"
        out[topic] = schema
    return out


def write_schemas(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for topic, schema in topic_json_schemas().items():
        path = folder / f"{topic}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
