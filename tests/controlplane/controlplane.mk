# Local Kubernetes control plane: etcd + kube-apiserver/-controller-manager/-scheduler + kwok, built
# from pinned Go modules (tests/controlplane/README.md). Included by the top-level Makefile.
CONTROLPLANE := tests/controlplane
# `down`/`status` must work before the venv exists (the launcher only needs the standard library then).
CONTROLPLANE_PY = $(if $(wildcard $(PY)),$(PY),python3)

.PHONY: bins cluster-up cluster-down cluster-status

bins: ## build etcd, kwok, kube-apiserver/-controller-manager/-scheduler, kubectl once into $SENSEOPS_CACHE/bin (.bin links there)
	@$(CONTROLPLANE)/build-bins.sh

cluster-up: bins venv debian ## start the local control plane in the background; writes .cluster/kubeconfig
	@$(PY) -m tests.controlplane up

cluster-down: ## stop the control plane started by cluster-up and remove its data (logs stay in .cluster/logs)
	@$(CONTROLPLANE_PY) -m tests.controlplane down

cluster-status: ## show the control plane's processes, ports and /readyz (exit 3 when not running)
	@$(CONTROLPLANE_PY) -m tests.controlplane status
