# Operator helpers. Included by the top-level Makefile.
.PHONY: run-operator bench-operator

run-operator: venv ## run the operator locally against KUBECONFIG (default: .cluster/kubeconfig)
	KUBECONFIG=$${KUBECONFIG:-$(CURDIR)/.cluster/kubeconfig} $(PY) -m senseops_operator

bench-operator: deps ## benchmark create→status latency over 50 ASRModels (prints p50/p95)
	$(PY) tests/benchmarks/bench_operator_latency.py --count 50
