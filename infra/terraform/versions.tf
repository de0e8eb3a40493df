# Pinned so that `terraform init` on any machine resolves the same major versions as the ones
# these files were written and reviewed against. Commit the generated .terraform.lock.hcl.
terraform {
  required_version = ">= 1.5.0, < 2.0.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0" # any 6.x, never 7.0 (major versions change resource schemas)
    }
  }
}
