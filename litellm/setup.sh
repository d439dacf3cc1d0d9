#!/usr/bin/env bash
# Creates litellm/.venv from the hash-locked requirements.lock (the pinned, vetted LiteLLM proxy).
# Idempotent: a venv whose stamp matches the lock file's hash is left alone.
# Regenerate the lock with: uv pip compile litellm/requirements.in --generate-hashes \
#   --python-version 3.11 --python-platform x86_64-manylinux_2_28 -o litellm/requirements.lock
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
lock="$here/requirements.lock"
stamp="$venv/.modelcenter-lock.sha256"
python="${MODELCENTER_PYTHON:-python3}"

want="$(sha256sum "$lock" | cut -d' ' -f1)"
# One installer at a time (parallel test workers, a second terminal); the stamp is written last,
# so an interrupted install is redone on the next run.
exec 9>"$here/.setup.lock"
flock 9
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/litellm" ]]; then
  exit 0
fi

if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then
  echo "litellm/setup.sh: $python is older than Python 3.10; set MODELCENTER_PYTHON to a newer interpreter" >&2
  exit 1
fi

if [[ -f "$stamp" && -x "$venv/bin/python" ]]; then
  # A venv made from an earlier lock: install over it what the lock adds or changes (pip leaves
  # pins already satisfied alone), so a venv other checkouts share is never removed under them.
  echo "litellm/setup.sh: bringing $venv up to the lock (hash-checked)" >&2
else
  echo "litellm/setup.sh: installing the pinned LiteLLM into $venv (hash-checked)" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
  --require-hashes --no-deps --only-binary=:all: -r "$lock"
# Refuse a known-bad release even if the lock file was edited by hand.
version="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))')"
case "$version" in
  1.82.7|1.82.8) echo "litellm/setup.sh: litellm $version is a known-malicious release; refusing" >&2; rm -rf "$venv"; exit 1 ;;
esac
echo "$want" > "$stamp"
echo "litellm/setup.sh: litellm $version ready" >&2
