"""The local stack without Docker: Apache Kafka (KRaft, jars from Maven Central), PostgreSQL
(Debian packages) and the MLflow tracking server, owned by the project through PID files."""
