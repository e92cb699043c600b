# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Both create .venv from requirements.txt when it is missing or older than the file.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.requirements-installed

.PHONY: venv demo test browser bench clean

$(STAMP): requirements.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) demo.py

test: $(STAMP) browser
	$(PY) -m pytest -q

# The listening-page test drives Debian's chromium through chromedriver (selenium). When
# either is missing, install both with apt-get as root or with passwordless sudo (updating
# the package lists if the first try fails); otherwise say why the browser test will be
# skipped. Never fails.
APT := env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300
browser:
	@why=""; as=""; \
	if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then exit 0; fi; \
	if ! command -v apt-get >/dev/null; then why="no apt-get"; \
	elif [ "$$(id -u)" = 0 ]; then as=""; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then as="sudo -n"; \
	else why="installing them needs root or passwordless sudo"; fi; \
	if [ -z "$$why" ]; then \
	  echo "installing chromium and chromium-driver for the browser test"; \
	  $$as $(APT) install -y --no-install-recommends chromium chromium-driver || \
	  { $$as $(APT) update && $$as $(APT) install -y --no-install-recommends chromium chromium-driver; } || \
	  why="apt-get install failed"; \
	fi; \
	if [ -n "$$why" ]; then echo "chromium/chromedriver not installed ($$why): the browser test will be skipped"; fi

bench: $(STAMP)
	$(PY) benchmark.py

clean:
	rm -rf audio_results vae_logs bench_results .pytest_cache
