# Two commands on a fresh machine:
#   make demo   - set everything up, import the offline ImageNet backbone, prepare the
#                 clip-art data, run the pipeline, serve the pushed model, predict
#   make test   - set everything up and run the whole test suite
# make bench runs the four benchmarks (about 85 minutes) and writes bench/results/.
.PHONY: demo demo-text test venv system-packages lock clean bench

VENV := .venv
BIN := $(VENV)/bin

venv:
	@bash scripts/venv.sh

system-packages:
	@bash scripts/system_packages.sh

test: venv
	@bash scripts/system_packages.sh --browser
	GRAFT_REQUIRE_DATA=1 $(BIN)/python -m pytest -ra --durations=20

demo: venv system-packages
	@bash scripts/demo.sh

# The same loop on text: all-MiniLM-L6-v2, 1 000 tweets per class, raw strings served.
demo-text: venv
	@bash scripts/demo_text.sh

bench: venv system-packages
	$(BIN)/python bench/serving_latency.py --requests 100 --seconds 8
	$(BIN)/python bench/transfer_quality.py
	$(BIN)/python bench/transfer_toolbox.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/recurring.py

# Re-resolve the lock from requirements/*.in (needs uv: pip install uv). Review the diff.
lock:
	uv pip compile requirements/build-tools.in --python-version 3.10 \
	  --index-url https://pypi.org/simple --generate-hashes --no-header -o requirements/build-tools.lock
	uv pip compile requirements/requirements.in --override requirements/overrides.txt \
	  --python-version 3.10 --python-platform x86_64-manylinux_2_28 \
	  --index-url https://pypi.org/simple --generate-hashes --no-header -o requirements/requirements.lock

clean:
	rm -rf $(VENV) build .pytest_cache
