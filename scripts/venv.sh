#!/usr/bin/env bash
# Builds .venv from the exact lock. Reuses it when the lock and setup.py are
# unchanged (the stamp holds their hash). No dependency resolver runs here:
# every package comes from requirements/requirements.lock, hash-checked,
# installed with --no-deps, so two machines get byte-identical versions.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
LOCK=requirements/requirements.lock
STAMP="$VENV/.graft-installed"
want=$(cat requirements/build-tools.lock "$LOCK" setup.py | sha256sum | cut -d' ' -f1)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/graft" ]; then
  exit 0
fi

find_python() {
  local c pyenv_root
  # pyenv's shim for python3.10 fails unless 3.10 is the selected version, so
  # also look in pyenv's versions directory directly.
  pyenv_root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
  for c in "${PYTHON:-}" python3.10 "$pyenv_root"/versions/3.10*/bin/python3.10; do
    [ -n "$c" ] || continue
    if "$c" -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1; then
      command -v "$c" || echo "$c"; return 0
    fi
  done
  return 1
}

if ! PY=$(find_python); then
  echo "graft needs Python 3.10 (TFX 1.16 has no wheels for newer Pythons on these machines)." >&2
  echo "Install it (e.g. 'pyenv install 3.10' or 'apt-get install python3.10') or set PYTHON=/path/to/python3.10." >&2
  exit 1
fi

echo "== building $VENV with $PY from $LOCK (about 2-4 minutes the first time)"
rm -rf "$VENV"
start=$(date +%s)
"$PY" -m venv "$VENV"
ok=0
trap '[ $ok = 1 ] || { echo "venv build failed; removing $VENV so the next run starts clean" >&2; rm -rf "$VENV"; }' EXIT
PIP="$VENV/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes"
$PIP -r requirements/build-tools.lock   # pip, setuptools, wheel first: sdists then build as wheels
$PIP -r "$LOCK"
# graft itself, editable, without touching the locked set.
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
"$VENV/bin/python" -c 'import graft, tensorflow, tfx, tf_keras, tensorflow_hub, apache_beam, tfx_bsl'
echo "$want" > "$STAMP"
ok=1
echo "== $VENV ready in $(( $(date +%s) - start )) s, $(du -sh "$VENV" | cut -f1) on disk"
