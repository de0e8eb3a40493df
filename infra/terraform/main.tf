# The MLflow artifact bucket of Persona Stream (models, reference samples, drift reports).
#
# What changed from the seed's bucket, and why:
# - no lifecycle rule that deletes live objects: the seed deleted everything after 30 days, which
#   would delete the artifacts of every registered model version (a champion older than a month
#   could no longer be loaded). The only optional rule here removes *noncurrent* versions.
# - versioning on, soft delete on: an overwritten or deleted artifact can be recovered.
# - uniform bucket-level access and enforced public access prevention: IAM only, never public.
# - project, region and name are variables; nothing is hard-coded.

provider "google" {
  project = var.project_id
  region  = var.region
}

resource "google_storage_bucket" "mlflow_artifacts" {
  name          = var.bucket_name
  project       = var.project_id
  location      = upper(var.region)
  storage_class = var.storage_class
  labels        = var.labels

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false # never delete a bucket that still holds models

  versioning {
    enabled = true
  }

  soft_delete_policy {
    retention_duration_seconds = var.soft_delete_retention_days * 86400
  }

  # Only noncurrent (archived) versions, and only when asked for: live objects stay forever.
  dynamic "lifecycle_rule" {
    for_each = var.noncurrent_version_retention_days == null ? [] : [var.noncurrent_version_retention_days]
    content {
      condition {
        with_state                 = "ARCHIVED"
        days_since_noncurrent_time = lifecycle_rule.value
      }
      action {
        type = "Delete"
      }
    }
  }

  lifecycle {
    # The registry's models live here: `terraform destroy` must be a deliberate edit, not an accident.
    prevent_destroy = true
  }
}

resource "google_storage_bucket_iam_member" "mlflow_server" {
  count  = var.mlflow_service_account == null ? 0 : 1
  bucket = google_storage_bucket.mlflow_artifacts.name
  role   = "roles/storage.objectAdmin"
  member = "serviceAccount:${var.mlflow_service_account}"
}
