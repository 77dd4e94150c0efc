# Local Kubernetes control plane: etcd + kube-apiserver/-controller-manager/-scheduler + kwok, built
# from pinned Go modules (tests/controlplane/README.md), plus the process node (tests/procnode/README.md).
# Included by the top-level Makefile.
CONTROLPLANE := tests/controlplane
# `down`/`status` must work before the venv exists (the launcher only needs the standard library then).
CONTROLPLANE_PY = $(if $(wildcard $(PY)),$(PY),python3)

.PHONY: bins cluster-up cluster-down cluster-status

bins: ## build etcd, kwok, kube-apiserver/-controller-manager/-scheduler, kubectl once into $SENSEOPS_CACHE/bin (.bin links there)
	@$(CONTROLPLANE)/build-bins.sh

cluster-up: bins venv debian ## start the local control plane and the process node in the background; writes .cluster/kubeconfig
	@$(PY) -m tests.controlplane up
	@$(PY) -m tests.procnode up --state-dir .cluster/procnode --kubeconfig .cluster/kubeconfig

cluster-down: ## stop the process node (and every pod process) and the control plane; remove their data (logs stay)
	@if [[ -f .cluster/procnode/node.json ]]; then $(PY) -m tests.procnode down --state-dir .cluster/procnode; fi
	@$(CONTROLPLANE_PY) -m tests.controlplane down

cluster-status: ## show the control plane's processes, ports and /readyz, and the process node (exit 3 when not running)
	@$(CONTROLPLANE_PY) -m tests.controlplane status
	@$(CONTROLPLANE_PY) -m tests.procnode status --state-dir .cluster/procnode
