#!/bin/sh
# Start-up of the Fresco 3.1.2 image built by scripts/build-fresco (CMD, as uid 1001).
#
# Upstream's scripts/migrate-and-start.sh is:
#   npx prisma generate
#   npx tsx scripts/setup-database.ts    (prisma migrate deploy)
#   npx tsx scripts/initialize.ts        (records initializedAt once)
#   exec node server.js
# This differs in two ways only:
# - the migration step is fresco-platform/migrate.mjs, which applies Fresco's own
#   lib/db/migrations as `prisma migrate deploy` would, because Prisma's schema-engine
#   binary cannot be downloaded where the image is built (see migrate.mjs);
# - SIGTERM/SIGINT are forwarded during the prelude: each step runs as a child that this
#   shell waits for, so `docker stop` ends start-up at once (upstream's `sh` is PID 1,
#   ignores SIGTERM and is killed only at the stop timeout). The final `exec` makes node
#   PID 1, and Next's server exits on SIGTERM by itself.
# The image has no npm/npx (only Node's binary), so the local bins are run directly,
# which is what npx resolves to.
set -eu

cd /app

child=
on_signal() {
  if [ -n "$child" ]; then
    kill -TERM "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  exit 143
}
trap on_signal TERM INT

step() {
  "$@" &
  child=$!
  status=0
  wait "$child" || status=$?
  child=
  if [ "$status" -ne 0 ]; then
    echo "start: '$*' failed with status $status" >&2
    exit "$status"
  fi
}

# prisma generate runs offline: the Prisma 7 `prisma-client` generator needs no engine
# binary, only the CLI's own WebAssembly. The schema-engine binary Prisma looks for is
# absent; PRISMA_SCHEMA_ENGINE_BINARY points it at a placeholder that `generate` never
# runs. CHECKPOINT_DISABLE stops the CLI's update check (no network here).
step env PRISMA_SCHEMA_ENGINE_BINARY=/app/fresco-platform/schema-engine-unavailable \
  CHECKPOINT_DISABLE=1 node_modules/.bin/prisma generate
step node fresco-platform/migrate.mjs lib/db/migrations
step node_modules/.bin/tsx scripts/initialize.ts

trap - TERM INT
exec node server.js
