# Runtime area (issue 4): inference server, clients, streaming benchmark, runtime demo.
.PHONY: run-runtime token runtime-test test-ts-client bench-streaming bench-gpu demo-runtime ts-client-deps

RUNTIME_PORT ?= 8000
TS_CLIENT := runtime/clients/ts

run-runtime: venv ## serve the runtime on 127.0.0.1:8000 (RUNTIME_PORT) with the tiny test model and a dev secret
	@model=$${SENSEOPS_MODEL_URI:-file://$$($(PY) -m tests.testmodel build | tail -1)}; \
	  export SENSEOPS_MODEL_URI=$$model SENSEOPS_JWT_HS256_SECRET=$${SENSEOPS_JWT_HS256_SECRET:-dev-only-secret-change-me-0123456789}; \
	  echo "model $$model; tokens: make token"; \
	  $(PY) -m senseops_runtime --host 127.0.0.1 --port $(RUNTIME_PORT)

token: venv ## print a development JWT (TOKEN_ARGS="--sub alice --anchor a1 --consent"; secret from SENSEOPS_JWT_HS256_SECRET)
	@SENSEOPS_JWT_HS256_SECRET=$${SENSEOPS_JWT_HS256_SECRET:-dev-only-secret-change-me-0123456789} \
	  $(PY) -m senseops_runtime.tokens $(TOKEN_ARGS)

runtime-test: venv minio ## runtime tests: pure decisions, then a real server on loopback (tiny model, MinIO)
	$(PYTEST) tests/runtime $(PYTEST_ARGS)

ts-client-deps: ## install the TypeScript client's pinned dev dependencies (npm ci) and compile it
	cd $(TS_CLIENT) && npm ci --no-audit --no-fund && npm run build

test-ts-client: venv minio ts-client-deps ## TypeScript client tests (node --test) against a real runtime server
	$(PYTEST) tests/runtime/test_ts_client.py $(PYTEST_ARGS)

bench-streaming: venv ## streaming benchmark: full-size random-init model, 1/4/8/16/24 real-time clients (prints a table)
	$(PY) tests/benchmarks/bench_streaming.py $(BENCH_ARGS)

bench-gpu: venv ## the CUDA path: offline RTF, batched throughput, streams per GPU (needs an NVIDIA GPU; README)
	$(PY) tests/benchmarks/bench_gpu.py $(BENCH_ARGS)

demo-runtime: venv debian ## start the runtime with the tiny model, stream an espeak-ng utterance, print partials + final
	$(PY) tests/runtime/demo_runtime.py
