# Model area (issue 4, items 2 and 8): tiny test model, engines (torch / ONNX fp32 / ONNX int8), offline benchmark.
.PHONY: tiny-model test-model export-tiny-onnx fullsize-model bench-offline bench-offline-ab

FULLSIZE_MODEL_DIR ?= $(SENSEOPS_CACHE)/models/fullsize-random-seed0

tiny-model: venv ## build (once, ~2-5 min on 1 core) and cache the tiny trained SenseVoice test model; prints its dir
	@scripts/ensure-debian.sh espeak-ng libsndfile1
	$(PY) -m tests.testmodel build

test-model: venv minio tiny-model ## model tests: tags, espeak, tokenizer layout, torch/ONNX engines, model source
	$(PYTEST) tests/model $(PYTEST_ARGS)

export-tiny-onnx: tiny-model ## export the tiny model to ONNX fp32 + int8 (cached next to it); prints the dir
	$(PY) -c 'from tests.testmodel import ensure_tiny_model as e; from senseops_runtime.engine.export import ensure_exported as x, exported_dir as d; m = e(); print(x(m, d(m)))'

fullsize-model: venv ## write the full-size random-init SenseVoice-Small (234 M params) used by benchmarks
	@test -f $(FULLSIZE_MODEL_DIR)/senseops_testmodel.json || $(PY) -m tests.testmodel fullsize --out $(FULLSIZE_MODEL_DIR)

bench-offline: venv fullsize-model ## offline RTF, 5/10/30 s: ours (torch, ONNX fp32/int8) vs FunASR generate, sherpa-onnx, funasr-onnx
	@scripts/ensure-debian.sh espeak-ng libsndfile1
	@PROJECT_PY=$(PY) scripts/ensure-funasr-onnx-venv.sh >/dev/null || echo "funasr-onnx venv not built: its rows will say why"
	$(PY) tests/benchmarks/bench_offline_rtf.py --model-dir $(FULLSIZE_MODEL_DIR) $(BENCH_ARGS)

bench-offline-ab: venv fullsize-model ## interleaved A/B of the offline int8 changes (before / +numpy fbank / +scores int8)
	$(PY) tests/benchmarks/ab_offline_int8.py --model-dir $(FULLSIZE_MODEL_DIR) $(BENCH_ARGS)
