# Trainer area (issue 5): data stages, FunASR fine-tuning, evaluation, export and packaging.
.PHONY: train-demo trainer-test bench-trainer trainer-planted-cases

TRAINER_DEMO_DIR ?= .demo/trainer

train-demo: venv ## short fine-tune of the tiny model on synthetic espeak recordings; prints the evaluation summary
	@scripts/ensure-debian.sh espeak-ng libsndfile1
	@base=$$($(PY) -m tests.testmodel build | tail -1); \
	  $(PY) -m senseops_trainer.demo --dir $(TRAINER_DEMO_DIR) --base-model "$$base"

trainer-test: venv minio ## trainer tests (unit tables + the end-to-end fine-tune on MinIO, ~3-4 min)
	@scripts/ensure-debian.sh espeak-ng libsndfile1
	$(PYTEST) tests/trainer $(PYTEST_ARGS)

bench-trainer: venv ## print filter+normalize throughput (10,000 segments) and tiny-model training samples/s on CPU
	@scripts/ensure-debian.sh espeak-ng libsndfile1
	$(PY) tests/benchmarks/bench_trainer.py

trainer-planted-cases: venv ## print the planted bad-segment table (which rule catches each kind; good segments lost)
	@scripts/ensure-debian.sh espeak-ng libsndfile1
	$(PY) -m senseops_trainer.planted_cases
