#!/usr/bin/env bash
# Installs the Debian packages the tests and the blue-green strategy need, when they are missing:
#   nginx-light  — the front that blue-green switches between LiteLLM instances
#   postgresql   — the PostgreSQL server the spend-ledger tests run against
#   chromium     — the headless browser the dashboard's end-to-end tests drive (playwright-core)
# Idempotent and quick when everything is present. Needs root (or sudo) only to install.
set -euo pipefail

missing=()
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo=(sudo -n)
  else
    echo "install-system-packages: ${missing[*]} missing and not root; run: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
echo "install-system-packages: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
# policy-rc.d 101: the packages must not start system-wide services; Model Center starts its own.
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  "${sudo[@]}" bash -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
  trap '"${sudo[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
fi
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-system-packages: done" >&2
