# The live console page (/console) and its browser test (headless Debian chromium, fake microphone).
.PHONY: console-deps console-test

# The page test needs a browser: `make debian` installs it with the other packages.
DEBIAN_PACKAGES += chromium

console-deps: ## install Debian chromium for the console page test
	@scripts/ensure-debian.sh chromium

console-test: venv console-deps minio ## the console page in headless chromium against the real runtime; screenshot in out/test-artifacts/
	$(PYTEST) tests/runtime/test_console_page.py $(PYTEST_ARGS)
