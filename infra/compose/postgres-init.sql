-- Run once by the postgres image on an empty data volume (docker-entrypoint-initdb.d), as
-- POSTGRES_USER. The application database (POSTGRES_DB) already exists; MLflow gets its own.
-- The application schema is not created here: the compose `init` service runs
-- `persona db migrate`, the same versioned migrations (infra/migrations) as the local stack.
CREATE DATABASE mlflow;
