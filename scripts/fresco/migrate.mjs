// Applies Fresco's Prisma migrations (lib/db/migrations/*/migration.sql) without
// Prisma's schema engine, whose binary cannot be downloaded where this image is built.
// It replaces only `npx tsx scripts/setup-database.ts` (which runs `prisma migrate
// deploy`) in Fresco's start-up, and leaves the database as `prisma migrate deploy`
// would, so a later real `prisma migrate deploy` accepts it:
//
// - connects with DATABASE_URL_UNPOOLED (else DATABASE_URL), like a migration should
//   (upstream's prisma.config.ts uses DATABASE_URL);
// - honours `?schema=NAME` like Prisma's migrate: creates the schema if missing, then
//   `SET search_path = "NAME"` for the session (default `public`);
// - holds Prisma's advisory lock (pg_advisory_lock(72707369), 10 s timeout) meanwhile;
// - creates `_prisma_migrations` with the schema engine's own DDL if it is missing;
// - refuses to run while a failed migration is recorded (Prisma's P3009);
// - applies every migration directory not yet recorded (rolled-back rows do not count),
//   in lexical order, each in one transaction together with its row: id (uuid v4),
//   checksum (hex SHA-256 of the migration.sql bytes), started_at, finished_at,
//   migration_name, logs NULL, rolled_back_at NULL, applied_steps_count 1.
//   A failing migration rolls back whole and leaves no row (Prisma, whose script and
//   bookkeeping are not atomic, would leave a failed row that blocks later deploys);
// - keeps upstream setup-database.ts's workaround: a schema with tables but no
//   `_prisma_migrations` (an old `db push` install) gets `0_init` marked applied, as
//   `prisma migrate resolve --applied 0_init` records it (logs '', 0 steps).
//
// Usage: node migrate.mjs [migrations-dir]   (default: lib/db/migrations under the cwd)
// Exit status: 0 when the database is up to date, 1 on any error.

import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';

const LOCK_KEY = 72707369; // Prisma Migrate's advisory lock key
const LOCK_TIMEOUT_MS = 10_000; // as Prisma's ADVISORY_LOCK_TIMEOUT
const TABLE = '_prisma_migrations';
// The schema engine's DDL for PostgreSQL, created unqualified under the search_path.
const CREATE_TABLE = `CREATE TABLE _prisma_migrations (
    id                      VARCHAR(36) PRIMARY KEY NOT NULL,
    checksum                VARCHAR(64) NOT NULL,
    finished_at             TIMESTAMPTZ,
    migration_name          VARCHAR(255) NOT NULL,
    logs                    TEXT,
    rolled_back_at          TIMESTAMPTZ,
    started_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_steps_count     INTEGER NOT NULL DEFAULT 0
);`;
// Query parameters Prisma understands that mean nothing to node-postgres.
const PRISMA_ONLY_PARAMS = [
  'schema',
  'connection_limit',
  'pool_timeout',
  'pgbouncer',
  'statement_cache_size',
  'socket_timeout',
];

const log = (msg) => console.log(`migrate: ${msg}`);
const quoteIdent = (name) => `"${name.replaceAll('"', '""')}"`;
const checksum = (bytes) => createHash('sha256').update(bytes).digest('hex');

function connectionSettings() {
  const raw = process.env.DATABASE_URL_UNPOOLED || process.env.DATABASE_URL;
  if (!raw) throw new Error('neither DATABASE_URL_UNPOOLED nor DATABASE_URL is set');
  let url;
  try {
    url = new URL(raw);
  } catch {
    throw new Error('the database URL is not a valid URL');
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new Error(`unsupported database URL scheme ${url.protocol}`);
  }
  const schema = url.searchParams.get('schema') || 'public';
  for (const p of PRISMA_ONLY_PARAMS) url.searchParams.delete(p);
  return { connectionString: url.toString(), schema };
}

function listMigrations(dir) {
  if (!existsSync(dir)) throw new Error(`no migrations directory at ${dir}`);
  const lock = path.join(dir, 'migration_lock.toml');
  if (existsSync(lock)) {
    const provider = /provider\s*=\s*"([^"]*)"/.exec(readFileSync(lock, 'utf8'))?.[1];
    if (provider && provider !== 'postgresql') {
      throw new Error(`migration_lock.toml names provider ${provider}, not postgresql`);
    }
  }
  return readdirSync(dir)
    .filter((name) => statSync(path.join(dir, name)).isDirectory())
    .sort() // lexical, as Prisma orders migration directories
    .map((name) => {
      const file = path.join(dir, name, 'migration.sql');
      if (!existsSync(file)) throw new Error(`migration ${name} has no migration.sql`);
      const bytes = readFileSync(file);
      return { name, script: bytes.toString('utf8'), checksum: checksum(bytes) };
    });
}

async function acquireLock(client) {
  const deadline = Date.now() + LOCK_TIMEOUT_MS;
  for (;;) {
    const { rows } = await client.query('SELECT pg_try_advisory_lock($1) AS ok', [LOCK_KEY]);
    if (rows[0].ok) return;
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${LOCK_TIMEOUT_MS} ms waiting for the migration advisory lock (pg_advisory_lock(${LOCK_KEY}))`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

async function tablesIn(client, schema) {
  const { rows } = await client.query(
    `SELECT c.relname AS name FROM pg_class c
       JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r' AND n.nspname = $1`,
    [schema],
  );
  return rows.map((r) => r.name);
}

async function main() {
  const dir = path.resolve(process.argv[2] || path.join('lib', 'db', 'migrations'));
  const { connectionString, schema } = connectionSettings();
  const migrations = listMigrations(dir);
  log(`${migrations.length} migrations found in ${path.relative(process.cwd(), dir) || dir}`);

  const client = new pg.Client({ connectionString, application_name: 'fresco-migrate' });
  await client.connect();
  try {
    // As Prisma's migrate on connecting: create the schema if it is missing, then pin
    // the session's search_path to it.
    const { rows: exists } = await client.query(
      'SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS ok',
      [schema],
    );
    if (!exists[0].ok) {
      log(`creating schema "${schema}"`);
      await client.query(`CREATE SCHEMA ${quoteIdent(schema)}`);
    }
    await client.query(`SET search_path = ${quoteIdent(schema)}`);
    log(`datasource: database "${client.database}", schema "${schema}"`);

    await acquireLock(client);

    const tables = await tablesIn(client, schema);
    if (!tables.includes(TABLE)) {
      await client.query(CREATE_TABLE);
      if (tables.length > 0 && migrations.some((m) => m.name === '0_init')) {
        // upstream scripts/setup-database.ts: `prisma migrate resolve --applied 0_init`
        const init = migrations.find((m) => m.name === '0_init');
        log('schema has tables but no _prisma_migrations: marking 0_init as applied');
        await client.query(
          `INSERT INTO _prisma_migrations (id, checksum, logs, started_at, finished_at, migration_name)
           VALUES ($1, $2, '', now(), now(), $3)`,
          [randomUUID(), init.checksum, init.name],
        );
      }
    }

    const { rows: recorded } = await client.query(
      `SELECT migration_name, checksum, started_at, finished_at, rolled_back_at, logs
         FROM _prisma_migrations ORDER BY started_at`,
    );
    const failed = recorded.filter((r) => r.finished_at === null && r.rolled_back_at === null);
    if (failed.length > 0) {
      const names = failed
        .map((r) => `${r.migration_name} (started ${r.started_at.toISOString()})`)
        .join(', ');
      throw new Error(
        `found failed migrations in the target database (Prisma P3009), new migrations will not be applied: ${names}`,
      );
    }
    const applied = new Map(
      recorded.filter((r) => r.rolled_back_at === null).map((r) => [r.migration_name, r]),
    );
    for (const m of migrations) {
      const row = applied.get(m.name);
      if (row && row.checksum !== m.checksum) {
        log(`warning: ${m.name} was modified after it was applied (checksum differs)`);
      }
    }

    const pending = migrations.filter((m) => !applied.has(m.name));
    if (pending.length === 0) {
      log('no pending migrations to apply');
      return;
    }
    for (const m of pending) {
      log(`applying migration ${m.name}`);
      await client.query('BEGIN');
      try {
        // Simple-query protocol: the whole multi-statement script in one round trip,
        // as Prisma's schema engine sends it.
        await client.query(m.script);
        await client.query(
          `INSERT INTO _prisma_migrations
             (id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, applied_steps_count)
           VALUES ($1, $2, clock_timestamp(), $3, NULL, NULL, now(), 1)`,
          [randomUUID(), m.checksum, m.name],
        );
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        const code = err.code ? ` (SQLSTATE ${err.code})` : '';
        throw new Error(`migration ${m.name} failed and was rolled back: ${err.message}${code}`);
      }
    }
    log(`applied ${pending.length} migration(s): ${pending.map((m) => m.name).join(', ')}`);
  } finally {
    await client.end().catch(() => {});
  }
}

try {
  await main();
} catch (err) {
  // A failed TCP connect to several addresses is an AggregateError with no message.
  const detail =
    err.message ||
    (err.errors || []).map((e) => e.message).join('; ') ||
    err.code ||
    String(err);
  console.error(`migrate: error: ${detail}`);
  process.exit(1);
}
