#!/usr/bin/env bash
# The test suite on every supported Python (3.11, 3.12, 3.13), warnings as errors
# (pyproject.toml), each in a virtualenv of its own: .venv-py3.X. An interpreter this
# machine lacks is skipped and named; the run fails if any suite fails or none ran.
# Interpreters are looked up as pythonX.Y on PATH, then under pyenv's versions folder.
set -uo pipefail
cd "$(dirname "$0")/.."
VERSIONS=${PYTHON_VERSIONS:-3.11 3.12 3.13}

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

ran=() skipped=() failed=()
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
    "$python" -m venv "$venv" &&
      "$venv/bin/pip" install --quiet --disable-pip-version-check -e '.[dev]' &&
      touch "$venv/.installed" || { failed+=("$version (setup)"); continue; }
  fi
  echo "== Python $version: $("$venv/bin/python" --version)"
  if "$venv/bin/pytest" "$@"; then ran+=("$version"); else failed+=("$version"); fi
done

echo "== Python versions tested: ${ran[*]:-none}; skipped: ${skipped[*]:-none}; failed: ${failed[*]:-none}"
[ ${#failed[@]} -eq 0 ] && [ ${#ran[@]} -gt 0 ]
