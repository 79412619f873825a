"""Training helpers shared by the trainer entrypoint and the evaluation gate (no Airflow imports)."""
