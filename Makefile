# Two commands on a fresh Debian machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run stop test venv peers bench clean lint
RUN_ARGS := --config var/rtstation.toml --data-dir ./var
# the slowest tests are named at the end of every run: the suite must stay under 15 minutes on 2 cores
PYTEST_ARGS ?= --durations=25

# The tracked sample stays untouched: the first run copies it to ./var/rtstation.toml, which the editors change.
# A console that loses its terminal leaves its station running headless; `make run` again attaches to it.
run: $(STAMP) var/rtstation.toml
	@echo "rtstation: a station left running headless (terminal lost) is stopped with \`make stop\`" \
	      "(\`$(BIN)/rtstation stop $(RUN_ARGS)\`); \`make run\` attaches to it"
	$(BIN)/rtstation $(RUN_ARGS)
	@if [ -S ./var/api.sock ]; then echo "rtstation: a station still serves ./var (headless):" \
	      "\`make run\` attaches to it, \`make stop\` stops it"; fi

stop: $(STAMP) var/rtstation.toml
	$(BIN)/rtstation stop $(RUN_ARGS)

var/rtstation.toml:
	mkdir -p var
	cp -n sample_config/rtstation.toml var/rtstation.toml

test: peers $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: peers $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)
	$(BIN)/python -m bench.derive

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

peers:
	scripts/install-peers.sh

clean:
	rm -rf $(VENV) var .pytest_cache
