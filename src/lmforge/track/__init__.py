"""MLflow tracking: the store, stage runs, sweeps, the model registry, a PostgreSQL-backed server."""
