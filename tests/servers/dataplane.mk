# Data plane for tests (issue 8): the OCI registry (distribution v3), crane, Prometheus 3.x with
# Kubernetes discovery, built from pinned wrapper modules (tests/servers/README.md). Included by the
# top-level Makefile.
DATAPLANE := tests/servers

.PHONY: dataplane-bins check-go node dataplane-test

dataplane-bins: check-go ## build registry, crane, prometheus, promtool into $SENSEOPS_CACHE/bin (once per pinned version)
	@$(DATAPLANE)/build-bins.sh

check-go: ## fail early, saying what to do, when the Go here is older than a pinned wrapper module needs
	@scripts/ensure-go-version.sh tests/controlplane/go/* $(DATAPLANE)/go/*

node: ## make sure Node.js >= 20 is installed (the machine's, else apt's if new enough, else npm's `node`)
	@scripts/ensure-node.sh

dataplane-test: venv bins dataplane-bins ## registry, crane and Prometheus tests (Prometheus ones start a local cluster)
	$(PYTEST) tests/servers/test_dataplane_config.py tests/servers/test_registry.py \
	  tests/servers/test_prometheus.py tests/controlplane/test_kubectl.py $(PYTEST_ARGS)

# `make deps` (and so `make test` and `make demo`) builds these too; `make bins` stays the control plane
# but checks the Go version of every wrapper module first.
bins: check-go
deps: check-go dataplane-bins node
