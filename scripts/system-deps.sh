#!/usr/bin/env bash
# Install the Debian packages the test suite needs, only when they are missing.
# Runs as root on CI and on developer machines of this project's kind.
set -euo pipefail
need=()
# PostgreSQL server binaries: the fixtures start a throwaway cluster with initdb/pg_ctl.
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need+=(postgresql)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing system packages: ${need[*]} (run as root, or install them)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
