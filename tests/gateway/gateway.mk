# Gateway API data plane for tests: a real HAProxy programmed by the test-side Gateway controller stand-in
# (tests/gateway/README.md). Included by the top-level Makefile.
GATEWAY_STATE := .cluster/gateway

.PHONY: gateway-crds gateway-up gateway-down

gateway-crds: venv ## install the Gateway API CRDs (v1.6.1 standard channel, from the Go module) + GatewayClass
	$(PY) -m tests.gateway crds --kubeconfig .cluster/kubeconfig

gateway-up: venv debian gateway-crds ## run the Gateway controller stand-in + HAProxy against .cluster/kubeconfig (Ctrl-C stops)
	$(PY) -m tests.gateway run --kubeconfig .cluster/kubeconfig --state-dir $(GATEWAY_STATE)

gateway-down: ## stop an HAProxy that a crashed `make gateway-up` left running
	$(CONTROLPLANE_PY) -m tests.gateway down --state-dir $(GATEWAY_STATE)
