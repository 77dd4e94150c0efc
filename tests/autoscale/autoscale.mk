# Autoscaling on load (issue 13 item 4): KEDA built from its Go module, the runtime's ScaledObject, and the
# cluster test (tests/autoscale/README.md). Included by the top-level Makefile.
.PHONY: keda-bins test-autoscale

keda-bins: check-go ## build KEDA's operator and metrics API server into $SENSEOPS_CACHE/bin (long the first time)
	@tests/autoscale/build-bins.sh

test-autoscale: deps keda-bins ## load up → more replicas, load down → fewer, no stream cut (KEDA + Prometheus, marker autoscale)
	$(PYTEST) -m autoscale tests/autoscale $(PYTEST_ARGS)
