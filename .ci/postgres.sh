#!/usr/bin/env bash
# Installs PostgreSQL from Debian's packages when it is missing: the ledger test suite runs
# against a real server (test/helpers/postgres.ts starts a throw-away cluster on a free port).
# Called by .ci/run; safe to run again (returns at once when initdb is present).
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ -n "${MODELCENTER_PG_BIN:-}" ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo ".ci/postgres.sh: PostgreSQL is not installed; run as root, or: sudo apt-get install -y postgresql" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql >/dev/null
ls /usr/lib/postgresql/*/bin/initdb
