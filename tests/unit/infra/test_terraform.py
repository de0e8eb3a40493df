"""Static checks of infra/terraform (no terraform binary here): it parses, every variable is
declared and used, providers are pinned, and the bucket keeps registered models safe."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import hcl2
import pytest

TF_DIR = Path(__file__).resolve().parents[3] / "infra" / "terraform"
OPTIONS = hcl2.SerializationOptions(
    with_comments=False, strip_string_quotes=True, explicit_blocks=False
)


def parse(text: str) -> dict[str, Any]:
    return hcl2.loads(text, serialization_options=OPTIONS)


@pytest.fixture(scope="module")
def tf() -> dict[str, dict[str, Any]]:
    return {path.name: parse(path.read_text()) for path in sorted(TF_DIR.glob("*.tf"))}


def blocks(tf: dict[str, dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [block for document in tf.values() for block in document.get(kind, [])]


def declared_variables(tf: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: body for block in blocks(tf, "variable") for name, body in block.items()}


def buckets(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {}
    for resource in document.get("resource", []):
        found.update(resource.get("google_storage_bucket", {}))
    return found


def deletes_live_objects(bucket: dict[str, Any]) -> list[str]:
    """Lifecycle rules that could delete a live (current) object, e.g. a registered model."""
    rules = list(bucket.get("lifecycle_rule", []))
    for dynamic in bucket.get("dynamic", []):
        for content in dynamic.get("lifecycle_rule", {}).get("content", []):
            rules.append(content)
    problems = []
    for rule in rules:
        actions = {a.get("type") for a in rule.get("action", [])}
        if "Delete" not in actions:
            continue
        for condition in rule.get("condition", []):
            only_noncurrent = condition.get("with_state") == "ARCHIVED" and (
                "days_since_noncurrent_time" in condition or "num_newer_versions" in condition
            )
            if not only_noncurrent:
                problems.append(f"Delete when {condition}")
    return problems


def test_files_exist_and_parse(tf):
    assert set(tf) == {"main.tf", "outputs.tf", "variables.tf", "versions.tf"}
    assert (TF_DIR / "README.md").is_file()
    assert (TF_DIR / "terraform.tfvars.example").is_file()


def test_terraform_and_provider_versions_are_pinned(tf):
    (terraform,) = blocks(tf, "terraform")
    required = terraform["required_version"]
    assert ">=" in required and "<" in required.replace("<=", "<")
    (providers,) = terraform["required_providers"]
    google = providers["google"]
    assert google["source"] == "hashicorp/google"
    assert re.fullmatch(r"~> 6\.\d+(\.\d+)?", google["version"]), google["version"]
    assert set(providers) == {"google"}


def test_every_variable_is_declared_documented_and_used(tf):
    variables = declared_variables(tf)
    text = "\n".join(path.read_text() for path in TF_DIR.glob("*.tf"))
    used = set(re.findall(r"\bvar\.([a-z_][a-z0-9_]*)", text))
    assert used == set(variables), (
        f"undeclared {used - set(variables)}, unused {set(variables) - used}"
    )
    for name, body in variables.items():
        assert body.get("description"), f"variable {name} has no description"
        assert body.get("type"), f"variable {name} has no type"
    assert {"project_id", "region", "bucket_name"} <= set(variables)
    assert "default" not in variables["project_id"]  # no project is hard-coded
    assert "default" not in variables["bucket_name"]


def test_example_tfvars_only_sets_declared_variables(tf):
    example = parse((TF_DIR / "terraform.tfvars.example").read_text())
    assert set(example) <= set(declared_variables(tf))
    assert {"project_id", "region", "bucket_name"} <= set(example)


def test_bucket_is_versioned_private_and_from_variables(tf):
    (bucket,) = buckets(tf["main.tf"]).values()
    assert bucket["versioning"] == [{"enabled": True}]
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert bucket["force_destroy"] is False
    assert bucket["name"] == "${var.bucket_name}"
    assert bucket["project"] == "${var.project_id}"
    assert "var.region" in bucket["location"]
    assert bucket["lifecycle"] == [{"prevent_destroy": True}]
    (provider,) = blocks(tf, "provider")
    assert provider["google"] == {"project": "${var.project_id}", "region": "${var.region}"}


def test_no_lifecycle_rule_deletes_live_objects(tf):
    (bucket,) = buckets(tf["main.tf"]).values()
    assert "lifecycle_rule" not in bucket  # no static rule at all
    assert deletes_live_objects(bucket) == []
    # the only (optional) rule is off by default
    assert declared_variables(tf)["noncurrent_version_retention_days"]["default"] is None


def test_the_seeds_30_day_delete_rule_would_be_caught():
    seed = parse(
        """
        resource "google_storage_bucket" "seed" {
          name     = "seed-bucket"
          location = "EU"
          lifecycle_rule {
            condition { age = 30 }
            action { type = "Delete" }
          }
        }
        """
    )
    (bucket,) = buckets(seed).values()
    assert deletes_live_objects(bucket) == ["Delete when {'age': 30}"]


def test_outputs_give_the_mlflow_destination(tf):
    outputs = {name: body for block in blocks(tf, "output") for name, body in block.items()}
    assert set(outputs) == {"bucket_name", "bucket_url", "mlflow_artifacts_destination"}
    assert "var.artifacts_prefix" in outputs["mlflow_artifacts_destination"]["value"]
    readme = (TF_DIR / "README.md").read_text()
    assert "--artifacts-destination" in readme
    assert "terraform output -raw mlflow_artifacts_destination" in readme
