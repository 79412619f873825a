"""The Astro stack's files: what `astro dev start` would run, checked without a Docker engine.

Every Airflow component gets the data root, Feast's S3 endpoint and the store's credentials; the buckets the
stack writes to are created before MLflow starts; unauthenticated services publish on loopback only; the image
installs the locked set.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from mlops_provider.names import FEAST_REGISTRY_POOL, PROMOTION_POOL

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_COMPONENTS = ("scheduler", "dag-processor", "api-server", "triggerer")


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.override.yml").read_text())


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+(?:\[[a-z,]+\])?)==(\S+)", line)
        if match:
            found[match.group(1).lower()] = match.group(2)
    return found


def test_every_airflow_component_reads_the_same_data_root_and_store():
    services = compose()["services"]
    for component in AIRFLOW_COMPONENTS:
        env = services[component]["environment"]
        assert env["AIRFLOW__MLOPS__DATA_ROOT"].startswith("s3://"), component
        assert env["FEAST_S3_ENDPOINT_URL"] == "http://minio:9000", component
        assert "MINIO_ROOT_USER" in env["AWS_ACCESS_KEY_ID"], component
        assert "MINIO_ROOT_PASSWORD" in env["AWS_SECRET_ACCESS_KEY"], component


def test_the_init_service_creates_every_bucket_before_mlflow_starts():
    services = compose()["services"]
    data_bucket = services["scheduler"]["environment"]["AIRFLOW__MLOPS__DATA_ROOT"].split("/")[2]
    artifacts_bucket = re.search(r"--artifacts-destination s3://([^/\s]+)", services["mlflow"]["command"]).group(1)
    init_command = " ".join(services["minio-init"]["command"])
    created = set(re.search(r"mc mb --ignore-existing (.+)", init_command).group(1).replace("local/", "").split())
    assert {data_bucket, artifacts_bucket} <= created
    assert services["mlflow"]["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"


def test_services_without_auth_publish_on_loopback_only_and_no_secret_is_written_down():
    text = (ROOT / "docker-compose.override.yml").read_text()
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond this machine"
    for value in re.findall(r"(?:PASSWORD|SECRET_ACCESS_KEY|ROOT_USER|ACCESS_KEY_ID):\s*(\S+)", text):
        assert value.startswith("${"), f"a credential is written in the compose file: {value}"


def test_the_image_installs_the_locked_set_for_python_3_12():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "requirements-astro.lock" in dockerfile and "-c /tmp/constraints.txt" in dockerfile
    astro_lock = ROOT / "requirements-astro.lock"
    assert "--python-version 3.12" in astro_lock.read_text().splitlines()[1]
    local, astro = pins(ROOT / "requirements.lock"), pins(astro_lock)
    assert {name: (local.get(name), version) for name, version in astro.items() if local.get(name) != version} == {}
    for requirement in (ROOT / "requirements.txt").read_text().splitlines():
        name = re.match(r"^([A-Za-z0-9_.\-]+)", requirement)
        if name and not requirement.startswith("-"):
            assert name.group(1).lower().split("[")[0] in astro, f"{requirement} is not pinned for the image"


def test_astro_settings_create_the_pools_the_dags_use():
    settings = yaml.safe_load((ROOT / "airflow_settings.yaml").read_text())
    pools = {pool["pool_name"]: pool["pool_slot"] for pool in settings["airflow"]["pools"]}
    assert pools == {PROMOTION_POOL: 1, FEAST_REGISTRY_POOL: 1}


def test_the_trainer_image_pins_the_versions_the_tests_ran():
    local = pins(ROOT / "requirements.lock")
    image = pins(ROOT / "docker" / "trainer-requirements.txt")
    assert {"xgboost", "distributed", "gcsfs", "mlflow-skinny"} <= set(image)
    names = {name.split("[")[0]: version for name, version in image.items()}
    mismatched = {n: (v, local.get(n)) for n, v in names.items() if n in local and local[n] != v}
    assert mismatched == {}
