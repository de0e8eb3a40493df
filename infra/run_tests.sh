#!/usr/bin/env bash
# `make test`: run the whole suite against a real stack. If the stack was already up, it stays
# up; if this script started it, this script stops it again, whatever the outcome.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
started=0
if ! "$BIN/persona" stack status --check >/dev/null 2>&1; then
  echo "== starting the local stack for the tests"
  "$BIN/persona" stack up || { "$BIN/persona" stack down; exit 1; }
  started=1
fi
cleanup() { if [ "$started" = 1 ]; then echo "== stopping the stack this run started"; "$BIN/persona" stack down; fi; }
trap cleanup EXIT
t0=$(date +%s)
"$BIN/pytest" tests -q -p no:cacheprovider "$@"
rc=$?
echo "== test suite took $(( $(date +%s) - t0 )) s"
exit $rc
