"""KServe model server of the MLOps bundle: an XGBoost predictor and a Feast transformer.

Run ``python -m mlops_serving --component predictor|transformer ...`` (see ``mlops_serving.__main__``).
The same code runs in the KServe containers (``docker/serving.Dockerfile``) and as local processes started
by the Airflow provider's local serving backend.
"""

__version__ = "0.1.0"
