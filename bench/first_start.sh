#!/usr/bin/env bash
# The first `scripts/serve` of a fresh clone (issue 29): from nothing to
# /readyz answering, with a fresh .venv. Prints the wall time and the CPU
# time of the whole tree (pip, the certificate, gunicorn and its workers):
# on a shared machine the CPU time is the figure that does not depend on the
# load. WHEELS=DIR installs from a local directory of the locked wheels
# (`pip download --require-hashes --no-deps -r requirements.lock -d DIR`,
# plus setuptools and wheel), standing in for a warm pip cache.
#   bench/first_start.sh [WORKTREE]
set -u
tree=${1:-$(cd "$(dirname "$0")/.." && pwd)}
port=${PORT:-18443}
scratch=$(mktemp -d)
git -C "$tree" archive HEAD | tar -x -C "$scratch"
cd "$scratch"
if [ -n "${WHEELS:-}" ]; then export PIP_NO_INDEX=1 PIP_FIND_LINKS=$WHEELS; fi
start=$(date +%s.%N)
/usr/bin/time -o "$scratch/cpu" -f "%U %S" scripts/serve --port "$port" >"$scratch/serve.log" 2>&1 &
timed=$!
until curl -sk "https://127.0.0.1:$port/readyz" >/dev/null 2>&1; do sleep 0.25; done
end=$(date +%s.%N)
kill -TERM "$(pgrep -P "$timed")"; wait "$timed"
read -r user sys <"$scratch/cpu"
echo "first start: $(echo "$end - $start" | bc) s wall, cpu ${user}+${sys} s (load $(cut -d' ' -f1-3 /proc/loadavg))"
rm -rf "$scratch"
