#!/usr/bin/env bash
# Install the Debian packages the test suite needs, only when they are missing.
# Runs as root on CI and on developer machines of this project's kind.
set -euo pipefail

have_postgres() {
  command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

need=()
# PostgreSQL server binaries: the fixtures start a throwaway cluster with initdb/pg_ctl
# (tests/fixtures/postgres.py). Debian puts them in /usr/lib/postgresql/<version>/bin,
# not on PATH; the fixture looks there.
if ! have_postgres; then
  need+=(postgresql)
fi
# Headless Chromium for the web UI tests (Playwright drives /usr/bin/chromium; it never
# downloads a browser of its own).
if ! command -v chromium >/dev/null 2>&1; then
  need+=(chromium)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing system packages: ${need[*]} (run as root, or install them)" >&2
    exit 1
  fi
  if [[ " ${need[*]} " == *" postgresql "* ]]; then
    # The tests start their own clusters: do not let the package create and start the
    # system-wide "main" cluster (read through createcluster.conf's include_dir).
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/stemma-tests.conf
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
  if ! have_postgres; then
    echo "postgresql was installed but no initdb was found under /usr/lib/postgresql/*/bin" >&2
    exit 1
  fi
fi
