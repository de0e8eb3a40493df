#!/usr/bin/env bash
# `make test`: run the whole suite against real stacks — the default profile and the cluster
# profile (docs/cluster.md). A profile that was already up stays up; one this script started, it
# stops again, whatever the outcome. Both start at once: most of a start is waiting (JVMs, the
# cluster's quorum, MLflow's imports), and the two share no port or file.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
started=()
cleanup() {
  for profile in "${started[@]}"; do
    echo "== stopping the $profile stack this run started"
    "$BIN/persona" stack down --profile "$profile"
  done
}
trap cleanup EXIT
pids=()
logs=()
for profile in default cluster; do
  if ! "$BIN/persona" stack status --profile "$profile" --check >/dev/null 2>&1; then
    echo "== starting the $profile stack for the tests"
    log=$(mktemp)
    "$BIN/persona" stack up --profile "$profile" >"$log" 2>&1 &
    pids+=("$!")
    logs+=("$log")
    started+=("$profile")
  fi
done
failed=0
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || failed=1
  echo "== ${started[$i]}:"
  cat "${logs[$i]}"
  rm -f "${logs[$i]}"
done
[ "$failed" = 0 ] || exit 1
# The Evidently UI test drives a real browser: Debian's headless chromium and its driver.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing chromium and chromium-driver for the browser test"
    apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null; } \
      || echo "== could not install chromium; the browser test will fail with the fix"
  else
    echo "== chromium missing: run 'sudo apt-get install -y chromium chromium-driver' (the browser test fails without it)"
  fi
fi
t0=$(date +%s)
"$BIN/pytest" tests -q -p no:cacheprovider --durations=30 "$@"
rc=$?
echo "== test suite took $(( $(date +%s) - t0 )) s"
exit $rc
