#!/usr/bin/env bash
# The headline table of docs/performance.md: the GET and POST shapes with access logs on for
# both servers, on both harnesses — wrk with nginx `return 200` as the function stub, and the
# built-in client with the built-in stub — alternating, SITTINGS (5) sittings each, then the
# median over sittings of each within-run ratio to nginx (benches/sittings.py).
#
#     benches/headline.sh                                  # about 30 minutes on 2 cores
#     SITTINGS=1 FNGATE_BENCH_SHAPES=headers,c256,c1024,reply benches/headline.sh
#     FNGATE_BENCH_THREADS=2 benches/headline.sh           # fngate threads: 2, nginx 2 workers
set -euo pipefail
cd "$(dirname "$0")/.."
missing=""
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx"
command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
if [ -n "$missing" ]; then
  apt-get update -qq && apt-get install -y -qq $missing
fi
record=${FNGATE_BENCH_RECORD:-target/bench-sittings.tsv}
mkdir -p "$(dirname "$record")"
: >"$record"
export FNGATE_BENCH_LOG=1 FNGATE_BENCH_RECORD="$record"
export FNGATE_BENCH_SHAPES=${FNGATE_BENCH_SHAPES:-get,post}
export FNGATE_BENCH_ONLY=${FNGATE_BENCH_ONLY:-fngate,nginx}
export FNGATE_BENCH_SECS=${FNGATE_BENCH_SECS:-5} FNGATE_BENCH_RUNS=${FNGATE_BENCH_RUNS:-3}
cargo bench --bench load --no-run
for _ in $(seq "${SITTINGS:-5}"); do
  FNGATE_BENCH_CLIENT=wrk FNGATE_BENCH_STUB=nginx cargo bench --bench load
  cargo bench --bench load
done
python3 benches/sittings.py "$record"
