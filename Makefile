# The two commands of the README:
#   make run   -> set everything up, start the chat on the offline default model
#   make test  -> set everything up, run the whole test suite
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test setup system-check lint bench clean-venv

run: $(STAMP)
	$(BIN)/chatwatch run

test: $(STAMP) system-check lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

setup: $(STAMP)

# Style and the dependency rule (README, Architecture): ruff and import-linter, config in pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/lint-imports

system-check:
	@scripts/check-system.sh

# Reinstalls only when pyproject.toml changes; re-running reuses .venv and starts in seconds.
$(STAMP): pyproject.toml scripts/build-llama-wheel.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@WHEELS=$$(scripts/build-llama-wheel.sh $(BIN)/python) && \
	  echo "llama-cpp-python from $$WHEELS" && \
	  $(BIN)/python -m pip install -q --no-deps --no-index --find-links "$$WHEELS" llama-cpp-python && \
	  PIP_ONLY_BINARY=llama-cpp-python $(BIN)/python -m pip install -q --find-links "$$WHEELS" -e '.[test]'
	touch $(STAMP)

bench: $(STAMP)
	$(BIN)/chatwatch bench $(NAME)

clean-venv:
	rm -rf $(VENV)
