# fastgw developer commands. `make run` and `make test` work on a fresh machine.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
BUILD_DEPS := Cython==3.3.1 setuptools==80.9.0 wheel==0.45.1
HOST ?= 127.0.0.1
PORT ?= 4000
CONFIG ?=

.PHONY: run install test test-fast wheel bench bench-full soak clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip==25.3

# Installs fastgw itself (not editable: the compiled core is built into site-packages).
install: $(PY)
	$(PIP) install -q $(BUILD_DEPS)
	$(PIP) install -q --no-build-isolation .

run: install
	$(VENV)/bin/fastgw serve --host $(HOST) --port $(PORT) $(if $(CONFIG),--config $(CONFIG),)

# Tests run against the installed package, so a file missing from the wheel fails them.
test: $(PY)
	$(PIP) install -q $(BUILD_DEPS)
	$(PIP) install -q --no-build-isolation ".[test]"
	cd tests && ../$(VENV)/bin/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

wheel: $(PY)
	$(PIP) install -q $(BUILD_DEPS)
	$(PIP) wheel --no-build-isolation --no-deps -w dist .

bench: install
	$(PY) benchmarks/run.py --quick

bench-full: install
	$(PY) benchmarks/run.py

soak: install
	$(PY) benchmarks/run.py --soak

clean:
	rm -rf build dist *.egg-info fastgw/_core/*.c fastgw/_core/*.so
