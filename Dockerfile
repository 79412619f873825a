# Astro Runtime 3.3 (Airflow 3.3, Python 3.12). `astro dev start` builds this image for every Airflow component.
# The -base image has no ONBUILD steps, so the install order is explicit: the provider must be in the
# build context before requirements.txt (which installs it from providers/mlops) is installed.
FROM astrocrpublic.azurecr.io/runtime:3.3-2-base

USER root
COPY packages.txt /usr/local/airflow/packages.txt
RUN apt-get update && xargs -a /usr/local/airflow/packages.txt apt-get install -y --no-install-recommends \
    && rm -rf /var/lib/apt/lists/*
USER astro

COPY --chown=astro:0 . /usr/local/airflow/
WORKDIR /usr/local/airflow
# Airflow itself comes from the runtime image; everything else at the versions of requirements-astro.lock,
# the local environment's lock resolved for Python 3.12 (`make lock`), used as constraints.
RUN grep -v '^apache-airflow==' requirements.txt > /tmp/requirements.txt \
    && grep -v -e '^apache-airflow==' -e '^-e ' requirements-astro.lock > /tmp/constraints.txt \
    && pip install --no-cache-dir -c /tmp/constraints.txt -r /tmp/requirements.txt

ENV AIRFLOW__MLOPS__PROJECT_ROOT=/usr/local/airflow
