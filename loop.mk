# The whole loop, unattended (issue 11): `make demo-loop`, `make demo-loop-down`. See scripts/loop/.
.PHONY: demo-loop demo-loop-down test-loop lint-loop

demo-loop: deps ## the whole loop on the local stack: streamers record, fine-tune, release 5→50→100, planted bad candidate rolled back (LOOP_UNTIL=phase stops early)
	$(PY) -m scripts.loop run $(if $(LOOP_UNTIL),--until $(LOOP_UNTIL),)

demo-loop-down: ## remove what demo-loop made and stop the stack
	$(PY) -m scripts.loop down

test-loop: deps ## the whole loop as an end-to-end test (12–30 min; marker loop_full, which `make test` leaves out)
	$(PYTEST) -m loop_full tests/loop/test_loop_full_e2e.py $(PYTEST_ARGS)

lint-loop: venv ## ruff and mypy --strict on scripts/loop and its tests
	$(VENV)/bin/ruff check scripts/loop tests/loop
	$(VENV)/bin/mypy --strict --follow-imports=silent scripts/loop

lint: lint-loop
