# Two commands on a fresh machine:
#   make demo   set up .venv and run the main job on its embedded default
#   make test   set up .venv with the dev extras and run the whole test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install -q -c constraints.txt

.PHONY: demo test test-fast setup setup-dev browser bench clean

$(VENV)/.setup: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) torch==2.13.0
	$(PIP) -e .
	touch $@

$(VENV)/.setup-dev: $(VENV)/.setup
	$(PIP) -e '.[dev]'
	touch $@

setup: $(VENV)/.setup
setup-dev: $(VENV)/.setup-dev

# the main job: a char LSTM on this Python's standard library (~5 min), then a sample from it
DEMO_RUN := runs/demo-$(shell date -u +%Y%m%d-%H%M%S)
demo: setup
	$(VENV)/bin/lstmkit train --out $(DEMO_RUN)
	$(VENV)/bin/lstmkit generate $(DEMO_RUN) --sample-length 600

# Headless Chromium for the gate-report browser test (Debian packages; needs root, so
# elsewhere this only warns and that test skips, saying why).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) || \
	  echo "make browser: could not install chromium (not root?); the browser test will skip"

test: setup-dev browser
	$(PY) -m pytest -n 2 tests

# the subset without @pytest.mark.slow (one case per family of each sweep): under 2 minutes on 2 cores
test-fast: setup-dev
	$(PY) -m pytest -n 2 -m "not slow" tests

bench: setup
	$(VENV)/bin/lstmkit bench

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
