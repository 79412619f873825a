"""The MLOps page of the Airflow 3 UI (FastAPI app behind the ``mlops`` plugin in ``plugins/``)."""
