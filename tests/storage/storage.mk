# Storage area (issue 3): object storage module, local S3/COS servers, spool.
.PHONY: minio storage-test storage-bench

minio: ## Build MinIO from its Go module into $SENSEOPS_CACHE/bin (once per pinned version), link .bin/minio
	SENSEOPS_CACHE=$(SENSEOPS_CACHE) tests/servers/minio/build.sh

storage-test: venv minio ## Storage suite: file://, s3:// on MinIO, cos:// on the moto stand-in, spool fault test
	$(PYTEST) tests/storage

storage-bench: venv minio ## Print upload/download throughput (1 MiB, 256 MiB) per storage backend
	$(PY) tests/benchmarks/bench_storage.py
