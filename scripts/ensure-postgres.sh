#!/usr/bin/env bash
# Make sure the PostgreSQL the storage tests use is up (127.0.0.1:5432, database `test`).
# The machine starts it before a session; this starts it again if it has stopped.
set -u
url="${CREDENCE_TEST_PG_URL:-postgresql://postgres@127.0.0.1:5432/test}"
if [ "${CREDENCE_SKIP_PG:-0}" = "1" ]; then exit 0; fi
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then exit 0; fi
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && exit 0
  sleep 1
done
echo "PostgreSQL is not reachable at $url; the storage suite needs it (CREDENCE_SKIP_PG=1 skips it)" >&2
exit 1
