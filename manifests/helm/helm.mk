# Helm chart (manifests/helm/senseops) and the helm binary built from its pinned Go module (tests/helm/go).
.PHONY: helm helm-lint helm-template helm-test

helm: ## build helm v3.22.0 from its Go module into $SENSEOPS_CACHE/bin (once), .bin/helm
	@tests/helm/build-helm.sh

helm-lint: helm ## helm lint the chart with its default, TKE and TKE-GPU values
	.bin/helm lint --strict manifests/helm/senseops
	.bin/helm lint --strict manifests/helm/senseops -f manifests/helm/senseops/values-tke.yaml
	.bin/helm lint --strict manifests/helm/senseops -f manifests/helm/senseops/values-tke.yaml \
	  -f manifests/helm/senseops/values-tke-gpu.yaml

helm-template: helm ## print the chart's objects (defaults; VALUES=values-tke.yaml for TKE)
	.bin/helm template senseops manifests/helm/senseops --include-crds \
	  $(if $(VALUES),-f manifests/helm/senseops/$(VALUES))

helm-test: venv helm bins ## chart tests: lint, same objects as kustomize, server-side dry run on the local cluster
	$(PYTEST) tests/helm $(PYTEST_ARGS)
