# kfp-tabular. Two commands on a fresh machine: `make run` (the pipeline end to end on the bundled default
# data) and `make test`. Environments are built from the committed locks only: nothing is resolved here.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
CACHE ?= $(HOME)/.cache/kfp-tabular
VENV := .venv
SERVE_VENV := .venv-serve
TOOLS := .venv-tools
UV := $(TOOLS)/bin/uv
PY := $(VENV)/bin/python
SERVE_PY := $(SERVE_VENV)/bin/python
PIPELINE_YAML := pipelines/training/train_and_deploy/pipeline.yaml
OUTPUTS ?= local_outputs
ROWS ?= 50000
DATA ?=
PORT ?= 8080
MODEL_NAME ?= churn-classifier
MODEL_DIR ?=
PYTEST_ARGS ?=
VERBOSE ?=
export KFP_TABULAR_CACHE := $(CACHE)

.PHONY: help run test compile lint format clean lock env serve-env apiserver kubectl serve predict images
.PHONY: podman run-containers

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# --- environments ---------------------------------------------------------------------------------------
$(UV): locks/tools.txt
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check --require-hashes -r locks/tools.txt
	touch $(UV)

$(VENV)/.installed: locks/pipeline-dev.txt setup.py | $(UV)
	test -x $(PY) || $(UV) venv --quiet --python $(PYTHON) $(VENV)
	$(UV) pip sync --quiet --python $(PY) --require-hashes locks/pipeline-dev.txt
	$(UV) pip install --quiet --python $(PY) --no-deps -e .
	touch $@

$(SERVE_VENV)/.installed: locks/serve.txt setup.py | $(UV)
	test -x $(SERVE_PY) || $(UV) venv --quiet --python $(PYTHON) $(SERVE_VENV)
	$(UV) pip sync --quiet --python $(SERVE_PY) --require-hashes locks/serve.txt
	$(UV) pip install --quiet --python $(SERVE_PY) --no-deps -e .
	touch $@

env: $(VENV)/.installed ## the pipeline environment (.venv): locks/pipeline.txt + dev tools (locks/pipeline-dev.txt)
serve-env: $(SERVE_VENV)/.installed ## the serve environment (.venv-serve) from locks/serve.txt

lock: | $(UV) ## re-resolve the locks (uv) from setup.py's extras
	$(UV) pip compile --quiet setup.py --extra pipeline --python-version 3.11 --generate-hashes -o locks/pipeline.txt
	$(UV) pip compile --quiet setup.py --extra pipeline --extra dev --constraint locks/pipeline.txt \
		--python-version 3.11 --generate-hashes -o locks/pipeline-dev.txt
	$(UV) pip compile --quiet setup.py --extra serve --python-version 3.11 --generate-hashes -o locks/serve.txt
	$(UV) pip compile --quiet locks/tools.in --python-version 3.11 --generate-hashes -o locks/tools.txt

# --- test infrastructure: a real kube-apiserver + etcd, built once per machine outside the checkout --------
apiserver: ## build kube-apiserver v1.20.2 from Debian's source package (cached in $(CACHE))
	bash tests/cluster/build-apiserver.sh

OLD_KUBECTL := $(CACHE)/kubectl-1.20/usr/bin/kubectl
kubectl: ## kubectl on PATH, plus Debian's kubectl 1.20 (old kustomize) unpacked in the cache for the manifest tests
	command -v kubectl >/dev/null || { apt-get update -qq && apt-get install -y -qq kubernetes-client; }
	test -x $(OLD_KUBECTL) || { tmp=$$(mktemp -d) && (cd $$tmp && { apt-get download -qq kubernetes-client 2>/dev/null \
		|| { apt-get update -qq && apt-get download -qq kubernetes-client; }; }) \
		&& dpkg-deb -x $$tmp/kubernetes-client_*.deb $(CACHE)/kubectl-1.20 && rm -rf $$tmp; }
	$(OLD_KUBECTL) version --client >/dev/null

.PHONY: browser
browser: ## headless Chromium for the report tests (Debian's chromium package, when missing)
	command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }

# --- the main job -----------------------------------------------------------------------------------------
run: env ## run the pipeline end to end with kfp.local on the bundled default data (DATA=path to use yours, VERBOSE=1 streams every task's output)
	$(PY) -m kfp_tabular.pipelines.cli run-local --output-dir $(OUTPUTS) --rows $(ROWS) $(if $(DATA),--data-uri $(DATA))$(if $(VERBOSE), --verbose)

compile: env ## compile the training and monitoring pipelines to their committed IR YAML
	$(PY) -m kfp_tabular.pipelines.cli compile --output $(PIPELINE_YAML)
	$(PY) -m kfp_tabular.pipelines.monitoring.monitor_and_retrain.compile

# The API-server tests need KServe's CRDs from ../shared; in a clone without it they skip, and so does their setup.
CLUSTER_DEPS := $(if $(wildcard ../shared/kserve),apiserver kubectl)

test: env serve-env browser rollout-deps $(CLUSTER_DEPS) images ## install everything the tests need, then run them all
	KFP_TABULAR_KUBECTL_OLD=$$(test -x $(OLD_KUBECTL) && echo $(OLD_KUBECTL) || true) \
		$(PY) -m pytest -c tests/pytest.ini --rootdir . $(PYTEST_ARGS)

lint: env ## ruff check + format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: env
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# --- local serving ----------------------------------------------------------------------------------------
serve: serve-env ## serve the local production model (or MODEL_DIR) with KServe on 127.0.0.1:$(PORT)
	$(SERVE_PY) -m kfp_tabular.components.deployment.model_server \
		$(if $(MODEL_DIR),--model_dir $(MODEL_DIR),--latest_under $(OUTPUTS)) --model_name $(MODEL_NAME) --http_port $(PORT)

predict: serve-env ## send sample rows (V1 lists, V1 records, V2 pd) to `make serve` and check they agree
	$(SERVE_PY) -m kfp_tabular.components.deployment.model_server.predict_sample \
		--url http://127.0.0.1:$(PORT) --model_name $(MODEL_NAME)

# --- progressive delivery: the local rollout rig (Debian's Prometheus and nginx, our model servers) -------------
.PHONY: rollout-deps rollout-demo
ROLLOUT_SCENARIOS ?=
rollout-deps: ## Debian's prometheus and nginx-light for the rollout rig (when missing)
	test -x /usr/bin/prometheus -a -x /usr/sbin/nginx || { apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus nginx-light; }
	/usr/bin/prometheus --version 2>&1 | head -1 && /usr/sbin/nginx -v

rollout-demo: env serve-env rollout-deps ## canary rollouts on 127.0.0.1: good promoted; shifted, errors, slow, no-traffic rolled back (ROLLOUT_SCENARIOS=good slow to pick)
	$(PY) -m kfp_tabular.pipelines.rollout.demo --run-dir $(OUTPUTS)/rollout-demo/$$(date -u +%Y%m%dT%H%M%SZ) $(ROLLOUT_SCENARIOS)

# --- the production loop: served traffic -> monitor -> retrain -> gated, staged model (docs/monitoring.md) ------------
.PHONY: loop-demo
loop-demo: env serve-env rollout-deps ## the loop on 127.0.0.1 in a fresh directory: a production model served to the collector, normal then drifted traffic, monitoring pipeline (kfp.local) retrains; a shuffled-labels model is not deployed; the blessed one staged as a 10% canary behind nginx; lineage printed
	$(PY) -m kfp_tabular.pipelines.monitoring.loop_demo --output-dir $(OUTPUTS)/loop-demo/$$(date -u +%Y%m%dT%H%M%SZ)

# --- containers: podman from Debian's archive, settings in components/common/containers/containers.conf ------
podman: ## install podman, runc and mmdebstrap from Debian's archive (when missing)
	bash -c '. components/common/containers/podman-env.sh && podman_ready'

images: podman ## build the pipeline and serve images (podman; offline Debian base when no registry is reachable)
	bash components/common/containers/build.sh

run-containers: env images ## `make run` with every task in the pipeline image (kfp.local DockerRunner over podman)
	$(PY) -m kfp_tabular.pipelines.cli run-local --runner docker --output-dir $(OUTPUTS) --rows $(ROWS) \
		$(if $(DATA),--data-uri $(DATA)) $(if $(VERBOSE),--verbose)

# --- benchmarks: ratios against baselines measured in the same run (docs/benchmarks.md) ------------------------
# TFX 1.16 (the ingest+validate baseline) lives in its own venv under $(CACHE)/tfx-1.16, never in the locks.
SCALE_ROWS ?=
.PHONY: bench
bench: env ## time ours against baselines (bare script, TFX, TFDV, trivial compile); SCALE_ROWS=5000000 adds a size
	test -f $(CACHE)/tfx-1.16/.installed || bash bench/tfx_env.sh $(CACHE)/tfx-1.16 \
		|| echo "make bench: the TFX venv could not be built; bench/tfx_compare.py reports why"
	$(PY) bench/run_all.py --output $(OUTPUTS)/bench $(if $(SCALE_ROWS),--scale-rows $(SCALE_ROWS))

clean: ## remove environments, local outputs and caches (not the kube-apiserver build cache)
	rm -rf $(VENV) $(SERVE_VENV) $(TOOLS) $(OUTPUTS) .pytest_cache .ruff_cache *.egg-info build dist
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
