-- The tenant data plane: the Postgres servers tenant databases live on, where
-- each tenant's data is, and moves of a tenant between them.

-- One row per server. `admin_url` is the DSN of the platform's own
-- (CREATEROLE, CREATEDB, non-superuser) role there; NULL means the platform's
-- own DATABASE_URL (the server the platform database is on). It is a secret:
-- never shown. `tenant_host` / `pooler_host` are `host:port` as tenant
-- containers reach the server directly (DATABASE_URL_UNPOOLED) and through its
-- PgBouncer (DATABASE_URL); a bare `:port` means the tenants network's gateway;
-- NULL for `tenant_host` means the platform's TENANT_DB_HOST (or gateway and
-- the port of DATABASE_URL), NULL for `pooler_host` its TENANT_DB_POOLER_PORT
-- (unset: no pooler, both URLs direct). `capacity` is the most live tenants placed on it.
CREATE TABLE db_servers (
    id           uuid PRIMARY KEY,
    name         text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$'),
    admin_url    text,
    tenant_host  text,
    pooler_host  text,
    capacity     integer NOT NULL CHECK (capacity > 0),
    draining     boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Where a tenant's data lives: its server, the database holding it, and how it
-- is isolated there (`database`: its own database; `schema`: schema
-- tenant_<id> in a shared tenants database, or, for tenants made before this
-- migration, in the platform database itself, until they are moved). NULL
-- until the reconciler places it.
ALTER TABLE tenants ADD COLUMN db_server_id uuid REFERENCES db_servers (id);
ALTER TABLE tenants ADD COLUMN db_name text;
ALTER TABLE tenants ADD COLUMN db_isolation text CHECK (db_isolation IN ('schema', 'database'));
CREATE INDEX tenants_db_server_idx ON tenants (db_server_id) WHERE status <> 'destroyed';

-- The server the platform database is on, with its settings from the
-- platform's configuration (the NULL columns); `db-servers update` changes its
-- capacity. 40 tenants at the default CONNECTION LIMIT of 10 fit a server with
-- max_connections 500 (README, "Tenant data plane"); `serve` warns at start
-- when the server's max_connections is too small for it.
INSERT INTO db_servers (id, name, capacity)
VALUES ('00000000-0000-0000-0000-000000000001', 'default', 40);

-- Tenants made before this migration are on that server: in a database of their
-- own, or (schema mode) in a schema of the platform database itself, where they
-- stay until moved to the tenants database. Those never provisioned are placed
-- by the reconciler like new ones.
UPDATE tenants t
   SET db_server_id = '00000000-0000-0000-0000-000000000001',
       db_name = CASE WHEN EXISTS (SELECT 1 FROM pg_database WHERE datname = 'tenant_' || t.tenant_identifier)
                      THEN 'tenant_' || t.tenant_identifier ELSE current_database() END,
       db_isolation = CASE WHEN EXISTS (SELECT 1 FROM pg_database WHERE datname = 'tenant_' || t.tenant_identifier)
                           THEN 'database' ELSE 'schema' END
 WHERE t.status <> 'destroyed'
   AND (EXISTS (SELECT 1 FROM pg_database WHERE datname = 'tenant_' || t.tenant_identifier)
        OR EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'tenant_' || t.tenant_identifier));

-- `move` joins the lifecycle actions.
ALTER TABLE tenants DROP CONSTRAINT tenants_current_action_check;
ALTER TABLE tenants ADD CONSTRAINT tenants_current_action_check
    CHECK (current_action IN ('create', 'start', 'stop', 'restart', 'destroy', 'update',
                              'recover', 'move'));
ALTER TABLE deployment_logs DROP CONSTRAINT deployment_logs_action_check;
ALTER TABLE deployment_logs ADD CONSTRAINT deployment_logs_action_check
    CHECK (action IN ('create', 'start', 'stop', 'restart', 'destroy', 'update', 'recover',
                      'move'));

-- A move of one tenant's data, step by step (each step is idempotent, so a
-- crash resumes it): pending → stopped (container stopped) → copied (dumped,
-- restored on the target and the row counts compared) → switched (the tenant
-- row points at the target: from here the target copy is the authoritative
-- one) → done (healthy on the target, the old copy dropped). Before `switched`
-- a failure rolls back (the target copy dropped, the tenant restarted where it
-- was): `rolled_back`. A destroy during a move abandons it.
CREATE TABLE tenant_moves (
    id              bigserial PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    from_server_id  uuid NOT NULL REFERENCES db_servers (id),
    from_db         text NOT NULL,
    from_isolation  text NOT NULL CHECK (from_isolation IN ('schema', 'database')),
    to_server_id    uuid NOT NULL REFERENCES db_servers (id),
    to_db           text NOT NULL,
    to_isolation    text NOT NULL CHECK (to_isolation IN ('schema', 'database')),
    phase           text NOT NULL DEFAULT 'pending'
                    CHECK (phase IN ('pending', 'stopped', 'copied', 'switched', 'done',
                                     'rolled_back', 'abandoned')),
    -- Why it was asked for: an admin, or the drain of `from_server_id`.
    reason          text NOT NULL,
    row_counts      jsonb,
    dump_bytes      bigint,
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
CREATE UNIQUE INDEX tenant_moves_open_key ON tenant_moves (tenant_id)
    WHERE phase IN ('pending', 'stopped', 'copied', 'switched');
CREATE INDEX tenant_moves_tenant_idx ON tenant_moves (tenant_id, id);
