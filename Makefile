# SenseOps — the front door. `make help` lists the targets.
# Every target installs what it needs (virtualenv, Debian packages, Go-built binaries) and is safe to rerun.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

export SENSEOPS_CACHE ?= $(HOME)/.cache/senseops
export PYTHONPATH := $(CURDIR)/operator:$(CURDIR)/runtime:$(CURDIR)/trainer_image:$(CURDIR)
# Debian packages the tests and the demo use. kubectl is not one: bookworm has none, so `make bins`
# builds it from the pinned Kubernetes module (the same version as the API server).
# iproute2 (ip netns, veth) and util-linux (unshare, nsenter) are what the process node runs pods with.
DEBIAN_PACKAGES := espeak-ng sox libsndfile1 openssl util-linux procps iproute2 haproxy redis-server
VENV := .venv
PY := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest
# Extra pytest arguments, e.g. `make test PYTEST_ARGS="-k crd -x"`.
PYTEST_ARGS ?=

.PHONY: help venv debian deps crds check-crds lint test test-fast demo demo-down clean

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_.-]+:.*## ' $(MAKEFILE_LIST) | sort -u | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  %-18s %s\n", $$1, $$2}'

venv: ## create/update the Python virtualenv (cached in ~/.cache/senseops, linked as .venv)
	@scripts/ensure-venv.sh

debian: ## install the Debian packages the tests and demo need (only the missing ones)
	@scripts/ensure-debian.sh $(DEBIAN_PACKAGES)

deps: venv debian bins minio helm ## everything the tests need: venv, Debian packages, Go-built binaries

crds: venv ## regenerate crds/*.yaml from the operator's pydantic models
	$(PY) -m senseops_operator.crdgen --out crds

check-crds: venv ## fail when crds/ differs from what the models generate
	$(PY) -m senseops_operator.crdgen --out crds --check

lint: venv check-crds ## ruff, mypy --strict on the pure core, import-linter contracts, CRD drift
	$(VENV)/bin/ruff check operator runtime trainer_image tests
	$(VENV)/bin/mypy operator/senseops_operator/models operator/senseops_operator/decide \
	  runtime/senseops_common/storage runtime/senseops_common/layout.py \
	  runtime/senseops_runtime/auth.py runtime/senseops_runtime/quotas.py runtime/senseops_runtime/scheduler.py \
	  runtime/senseops_runtime/streaming/decisions.py runtime/senseops_runtime/streaming/segmenter.py \
	  tests/gateway/model.py tests/gateway/translate.py tests/gateway/haproxy_config.py tests/gateway/status.py \
	  runtime/senseops_runtime/streaming/identity.py runtime/senseops_runtime/quota_redis.py \
	  runtime/senseops_runtime/body_limit.py runtime/senseops_runtime/logredact.py \
	  runtime/senseops_runtime/redaction.py
	$(VENV)/bin/mypy runtime/senseops_cli runtime/senseops_runtime/subtitles.py runtime/senseops_runtime/drain.py
	$(VENV)/bin/mypy runtime/senseops_common/progress.py
	$(VENV)/bin/mypy operator/senseops_operator/routers operator/senseops_operator/providers operator/senseops_operator/registry.py
	$(VENV)/bin/mypy $(addprefix trainer_image/senseops_trainer/,loss_guard.py audio_checks.py dedup.py split.py filters.py distributed.py)
	$(VENV)/bin/lint-imports

test: deps ## run every test (unit, integration on the local control plane and servers, end-to-end)
	$(MAKE) --no-print-directory lint
	$(PYTEST) $(PYTEST_ARGS)

test-fast: venv debian minio ## only the tests that need no cluster and no model (servers such as MinIO are fine)
	$(PYTEST) -m "not cluster and not slow and not model" $(PYTEST_ARGS)

demo: deps ## the main job: the whole loop unattended (record, retrain, release, roll back; scripts/loop, 12–30 min)
	$(MAKE) --no-print-directory demo-loop

demo-parts: deps ## the parts one by one: control plane + CRDs + operator + samples, then runtime and trainer demos
	$(PY) scripts/demo.py
	$(MAKE) --no-print-directory demo-runtime
	$(MAKE) --no-print-directory train-demo

demo-down: ## stop what `make demo` (and `make demo-parts`) left running
	$(MAKE) --no-print-directory demo-loop-down
	$(PY) scripts/demo.py down

clean: ## remove local state (.cluster, .demo); caches in ~/.cache/senseops are kept
	rm -rf .cluster .demo .pytest_cache

# One fragment per area, each owned by that area.
-include tests/controlplane/controlplane.mk
-include tests/storage/storage.mk
-include runtime/model.mk
-include runtime/runtime.mk
-include trainer_image/trainer.mk
-include operator/operator.mk
-include tests/servers/dataplane.mk
-include manifests/helm/helm.mk
-include runtime/console.mk
-include tests/gateway/gateway.mk
-include loop.mk
-include tests/autoscale/autoscale.mk
