# mailbot: each target does its own set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test test-long lint bench clean dovecot

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

demo: $(STAMP)
	$(BIN)/mailbot demo

lint: $(STAMP)
	$(BIN)/ruff check mailbot tests bench
	$(BIN)/ruff format --check mailbot tests bench
	$(BIN)/mypy mailbot
	$(BIN)/lint-imports

# The IMAP tests run a private Dovecot 2.3 (scripts/imap-test-server.sh): install it when
# missing. Checked on every run (cheap), so a machine that lost it gets it back.
dovecot:
	@test -x /usr/sbin/dovecot -a -x /usr/lib/dovecot/imap || \
	  (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y dovecot-imapd)
	@command -v systemd-analyze >/dev/null || \
	  (apt-get update && DEBIAN_FRONTEND=noninteractive \
	   apt-get install -y --no-install-recommends systemd)

test: lint dovecot
	$(BIN)/python -m pytest -q

# The full-size reliability runs (pytest marker `long`, left out of `make test`): a few
# minutes. Their figures: docs/reliability.md.
test-long: $(STAMP) dovecot
	$(BIN)/python -m pytest -q -s -m long

# bench/ingest.py runs a private Dovecot too (a few minutes; --quick for about one)
bench: $(STAMP) dovecot
	$(BIN)/python bench/explain.py
	$(BIN)/python bench/netsuite.py
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/limits.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build *.egg-info
