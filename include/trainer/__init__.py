"""The XGBoost trainer, run as ``python -m include.trainer`` (``mlops_provider.lineage.TRAINER_MODULE``).

Packaged by ``docker/trainer.Dockerfile`` for the kubernetes and vertex backends; the local backend runs it
as a subprocess. Modules: ``params`` (defaults and the YAML file), ``data`` (snapshot and time split),
``fit`` (device plan and booster), ``tracking`` (MLflow run, lineage and registry), ``__main__`` (CLI).
"""
