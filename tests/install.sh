#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine:
# the Python packages of requirements-dev.txt, Debian's Chromium for the browser tests and Debian's
# Prometheus for tests/test_prometheus.py,
# Debian's Java for Spark local mode,
# Debian's PostgreSQL for the store's tests on a real server.
# The real MLflow, MLServer and KServe servers get their own virtual environments (tests/servers.py),
# built here on first use and reused afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages, each installed only when missing: Chromium for the browser tests, Prometheus (the
# server alone, without the node exporter it recommends) for tests/test_prometheus.py.
apt_install() {
  if [ "$(id -u)" = "0" ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  fi
}
command -v chromium >/dev/null 2>&1 || apt_install chromium
command -v prometheus >/dev/null 2>&1 || apt_install --no-install-recommends prometheus
# Java for Spark local mode (tests/test_log_engine_spark.py).
command -v java >/dev/null 2>&1 || apt_install --no-install-recommends openjdk-17-jre-headless
# PostgreSQL for the store's tests on a real server (tests/fixtures_postgres.py runs its own initdb and pg_ctl
# from /usr/lib/postgresql/<version>/bin; the cluster Debian creates is not used).
command -v pg_ctl >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null \
  || apt_install --no-install-recommends postgresql
python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
# The real MLflow, MLServer and KServe servers: one virtual environment each, built once and reused.
python -m tests.servers mlflow mlserver kserve
echo "test dependencies installed: $(python --version), $(chromium --version 2>/dev/null | head -n 1)," \
  "$(prometheus --version 2>&1 | head -n 1)"
