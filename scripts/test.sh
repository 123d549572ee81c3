#!/usr/bin/env bash
# Install kyphosim with its test dependencies and run the whole test suite.
# Used as-is by the README and by .ci/run. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e ".[test]"
if [ -x scripts/install-system-deps.sh ]; then scripts/install-system-deps.sh; fi
python3 -m pytest -q "$@"
