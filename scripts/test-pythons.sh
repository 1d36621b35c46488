#!/usr/bin/env bash
# The test suite on every supported Python (3.11, 3.12, 3.13), warnings as errors
# (pyproject.toml), each in a virtualenv of its own: .venv-py3.X. An interpreter this
# machine lacks is skipped and named; the run fails if any suite fails or none ran.
# Interpreters are looked up as pythonX.Y on PATH, then under pyenv's versions folder.
#
# The suites run side by side, sharing the cores: a suite's time goes to the target runs
# its tests start (each ~0.4 s of CPU, most of it importing singer-sdk, hence the compiled
# bytecode below) and to waits on the stand-in, during which the others compute. Each
# one's output goes to .test-logs/pythonX.Y.log (the 15 slowest tests named at its end)
# and is printed whole when it ends, in version order. The tests use free ports and temporary folders only; those
# that run Meltano (the project's .meltano folder) run on Meltano's Python alone
# (tests/support/meltano.py).
# The summary names every version whose suite ran, and among them those that failed.
set -uo pipefail
cd "$(dirname "$0")/.."
VERSIONS=${PYTHON_VERSIONS:-3.11 3.12 3.13}
LOGS=.test-logs

find_python() {
  local version=$1 candidate
  if candidate=$(command -v "python$version") && "$candidate" -c '' 2>/dev/null; then
    echo "$candidate"
    return
  fi
  for candidate in $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}/versions/$version".* 2>/dev/null | sort -rV); do
    if [ -x "$candidate/bin/python$version" ]; then
      echo "$candidate/bin/python$version"
      return
    fi
  done
}

# Each virtualenv is set up in turn, by uv (the Makefile's, in .venv; the editable install
# writes the project's egg-info: two at once would race), while the suites of the versions
# already set up are running.
UV=${UV:-.venv/bin/uv}
mkdir -p "$LOGS"
started=() pids=() tested=() skipped=() failed=()
# background jobs of a script ignore Ctrl-C: stop them with it
trap 'kill "${pids[@]}" 2>/dev/null; exit 130' INT TERM
for version in $VERSIONS; do
  python=$(find_python "$version")
  if [ -z "$python" ]; then
    echo "== Python $version: SKIPPED (no python$version on PATH or under pyenv)"
    skipped+=("$version")
    continue
  fi
  venv=".venv-py$version"
  if [ ! -f "$venv/.installed" ] || [ pyproject.toml -nt "$venv/.installed" ]; then
    echo "== Python $version: setting up $venv with $python"
    "$UV" venv --quiet --clear --python "$python" "$venv" &&
      "$UV" pip install --quiet --python "$venv/bin/python" -e '.[dev]' &&
      touch "$venv/.installed" || { failed+=("$version (setup)"); continue; }
  fi
  # the project's own modules, which an editable install leaves uncompiled: each target
  # run the tests start would compile them again (uv compiles the rest: the Makefile's
  # UV_COMPILE_BYTECODE); a module edited since is compiled again here
  "$venv/bin/python" -m compileall -q target_leanpay leanpay_standin
  log="$LOGS/python$version.log"
  echo "== Python $version: $("$venv/bin/python" --version), running (output in $log)"
  "$venv/bin/pytest" "$@" >"$log" 2>&1 &
  started+=("$version") pids+=($!)
done

for i in "${!started[@]}"; do
  version=${started[$i]}
  wait "${pids[$i]}"
  status=$?
  echo "== Python $version: $([ $status -eq 0 ] && echo passed || echo FAILED)"
  cat "$LOGS/python$version.log"
  tested+=("$version")
  [ $status -eq 0 ] || failed+=("$version")
done

echo "== Python versions tested: ${tested[*]:-none}; skipped: ${skipped[*]:-none}; failed: ${failed[*]:-none}"
[ ${#failed[@]} -eq 0 ] && [ ${#tested[@]} -gt 0 ]
