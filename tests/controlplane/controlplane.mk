# Local Kubernetes control plane: etcd + kube-apiserver/-controller-manager/-scheduler + kwok, built
# from pinned Go modules (tests/controlplane/README.md), plus the process node (tests/procnode/README.md)
# and the data-plane servers (tests/stack.py). Included by the top-level Makefile.
CONTROLPLANE := tests/controlplane
# `down`/`status` must work before the venv exists (the launcher only needs the standard library then).
CONTROLPLANE_PY = $(if $(wildcard $(PY)),$(PY),python3)
# STACK=light leaves out the heavy parts (MinIO, registry, Prometheus, the Gateway stand-in + HAProxy).
STACK ?= full

.PHONY: bins cluster-up cluster-down cluster-status

bins: ## build etcd, kwok, kube-apiserver/-controller-manager/-scheduler, kubectl once into $SENSEOPS_CACHE/bin (.bin links there)
	@$(CONTROLPLANE)/build-bins.sh

cluster-up: bins dataplane-bins minio venv debian ## start control plane, process node, MinIO, registry, Prometheus, gateway (STACK=light: the first two)
	@$(PY) -m tests.stack up $(if $(filter light,$(STACK)),--light,)

cluster-down: ## stop everything cluster-up started (pods' processes included) and remove its data (logs stay)
	@if [[ -x $(PY) ]]; then $(PY) -m tests.stack down; else python3 -m tests.controlplane down; fi

cluster-status: ## show every part of the stack: processes, ports, /readyz, addresses (exit 3 when not running)
	@$(CONTROLPLANE_PY) -m tests.stack status
