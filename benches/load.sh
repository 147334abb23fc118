#!/usr/bin/env bash
# Runs the load benchmark (benches/load.rs) with nginx as the baseline, installing nginx from
# Debian's packages when it is missing. Pass FNGATE_BENCH_SECS / _RUNS / _CONNECTIONS to change
# the run; see docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  apt-get update -qq && apt-get install -y -qq nginx
fi
exec cargo bench --bench load
