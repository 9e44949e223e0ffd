#!/usr/bin/env bash
# Create (or reuse) .venv with the tested versions and lstmkit installed in editable mode.
# Idempotent: re-installs only when requirements-dev.txt or pyproject.toml changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
py="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    echo "creating $venv" >&2
    "$py" -m venv "$venv"
fi
stamp="$venv/.lstmkit-installed"
want="$(cat "$root/requirements-dev.txt" "$root/requirements-nodeps.txt" "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "installing dependencies into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$root/requirements-dev.txt"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$root/requirements-nodeps.txt"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e "$root"
    echo "$want" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
