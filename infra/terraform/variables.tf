variable "project_id" {
  description = "GCP project that owns the bucket (e.g. my-project-123)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a GCP project id: 6-30 lowercase letters, digits or hyphens."
  }
}

variable "region" {
  description = "Bucket location: a region (e.g. europe-west3) close to the MLflow server."
  type        = string
  default     = "europe-west3"
}

variable "bucket_name" {
  description = "Globally unique bucket name for MLflow artifacts (models, reference samples, reports)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$", var.bucket_name)) && !can(regex("^goog", var.bucket_name))
    error_message = "bucket_name must be 3-63 lowercase letters, digits, '-', '_' or '.', not starting with 'goog'."
  }
}

variable "artifacts_prefix" {
  description = "Folder inside the bucket that MLflow writes to (--artifacts-destination gs://<bucket>/<prefix>)."
  type        = string
  default     = "mlflow-artifacts"
}

variable "storage_class" {
  description = "Storage class of new objects. STANDARD: artifacts are read on every model load."
  type        = string
  default     = "STANDARD"

  validation {
    condition     = contains(["STANDARD", "NEARLINE", "COLDLINE", "ARCHIVE"], var.storage_class)
    error_message = "storage_class must be STANDARD, NEARLINE, COLDLINE or ARCHIVE."
  }
}

variable "noncurrent_version_retention_days" {
  description = <<-EOT
    Delete *noncurrent* object versions (overwritten or deleted copies) this many days after they
    became noncurrent. null (default) keeps them forever. Live objects, and so every registered
    model version, are never touched by this rule.
  EOT
  type        = number
  default     = null

  validation {
    condition     = var.noncurrent_version_retention_days == null || try(var.noncurrent_version_retention_days >= 7, false)
    error_message = "noncurrent_version_retention_days must be null or at least 7."
  }
}

variable "soft_delete_retention_days" {
  description = "Days a deleted object stays recoverable (GCS soft delete; 0 disables, 7-90 otherwise)."
  type        = number
  default     = 7

  validation {
    condition     = var.soft_delete_retention_days == 0 || (var.soft_delete_retention_days >= 7 && var.soft_delete_retention_days <= 90)
    error_message = "soft_delete_retention_days must be 0 or between 7 and 90."
  }
}

variable "mlflow_service_account" {
  description = "Email of the service account the MLflow server runs as; gets object admin on this bucket only. null = grant nothing."
  type        = string
  default     = null
}

variable "labels" {
  description = "Labels put on the bucket (cost attribution)."
  type        = map(string)
  default = {
    app       = "persona-stream"
    component = "mlflow-artifacts"
  }
}
