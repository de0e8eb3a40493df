output "bucket_name" {
  description = "Name of the artifact bucket."
  value       = google_storage_bucket.mlflow_artifacts.name
}

output "bucket_url" {
  description = "gs:// URL of the bucket."
  value       = google_storage_bucket.mlflow_artifacts.url
}

output "mlflow_artifacts_destination" {
  description = "Pass to `mlflow server --artifacts-destination` (with --serve-artifacts)."
  value       = "${google_storage_bucket.mlflow_artifacts.url}/${var.artifacts_prefix}"
}
