"""XGBoost trainer entrypoint (``python -m include.trainer.train``), packaged by ``docker/trainer.Dockerfile``."""
