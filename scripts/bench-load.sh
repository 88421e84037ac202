#!/usr/bin/env bash
# Loader benchmark: 1,000 containers over 200 files, against a plain TOML parse of the same
# files measured in the same run. Prints min / median / max over 40 rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench --bench load
