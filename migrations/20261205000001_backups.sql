-- Backups of tenant data: each one a pg_dump of the tenant's database, sealed
-- (encrypted and authenticated) by the platform and kept in the backup
-- storage; restores of a tenant to one of them.

-- One backup. `scheduled` ones belong to a slot of the schedule (one per tenant
-- and slot: the unique index makes a slot's backup exactly one row, however
-- often the scheduler looks); `manual` ones an owner or admin asked for;
-- `pre_restore` the state a restore replaced; `final` the state at destroy.
-- A worker takes a `pending` row (or a `running` one whose lease ran out: its
-- worker died) and renews the lease while it works. `object_key` names the
-- sealed dump in the storage; the rest is its manifest (also stored beside it).
CREATE TABLE tenant_backups (
    id              bigserial PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    kind            text NOT NULL CHECK (kind IN ('scheduled', 'manual', 'pre_restore', 'final')),
    slot            timestamptz,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'running', 'complete', 'failed', 'deleted')),
    requested_by    uuid REFERENCES users (id),
    attempts        integer NOT NULL DEFAULT 0,
    next_try_at     timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    storage         text,
    object_key      text,
    server_name     text,
    db_name         text,
    db_isolation    text CHECK (db_isolation IN ('schema', 'database')),
    fresco_image    text,
    schema_version  text,
    dump_bytes      bigint,
    stored_bytes    bigint,
    sha256          text,
    key_id          text,
    row_counts      jsonb,
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    completed_at    timestamptz,
    deleted_at      timestamptz,
    deleted_why     text,
    verified_at     timestamptz,
    verify_error    text,
    CHECK ((kind = 'scheduled') = (slot IS NOT NULL))
);
CREATE UNIQUE INDEX tenant_backups_slot_key ON tenant_backups (tenant_id, slot);
CREATE INDEX tenant_backups_tenant_idx ON tenant_backups (tenant_id, id DESC);
CREATE INDEX tenant_backups_work_idx ON tenant_backups (next_try_at)
    WHERE status IN ('pending', 'running');

-- Until when a destroyed tenant's backups are kept (set when the destroy is
-- asked for: the owner sees it then); an owner's "delete them now" sets it to
-- the present.
ALTER TABLE tenants ADD COLUMN backups_kept_until timestamptz;

-- `restore` joins the lifecycle actions.
ALTER TABLE tenants DROP CONSTRAINT tenants_current_action_check;
ALTER TABLE tenants ADD CONSTRAINT tenants_current_action_check
    CHECK (current_action IN ('create', 'start', 'stop', 'restart', 'destroy', 'update',
                              'recover', 'move', 'restore'));
ALTER TABLE deployment_logs DROP CONSTRAINT deployment_logs_action_check;
ALTER TABLE deployment_logs ADD CONSTRAINT deployment_logs_action_check
    CHECK (action IN ('create', 'start', 'stop', 'restart', 'destroy', 'update', 'recover',
                      'move', 'restore'));

-- A restore of tenant `tenant_id` to backup `backup_id` (of that tenant, or of
-- another: a copy into a new tenant), one phase per step, each saved before
-- the next: pending → verified (the sealed dump fetched, its SHA-256 and every
-- chunk's authentication checked) → stopped → backed_up (the state about to be
-- replaced saved as a `pre_restore` backup, so the restore can be undone) →
-- restored (the data replaced in one transaction, row counts checked inside
-- it) → done (the tenant converged again). A copy into a new tenant has no
-- stop or safety backup. Before `restored` a failure leaves the data as it was.
CREATE TABLE tenant_restores (
    id                bigserial PRIMARY KEY,
    tenant_id         uuid NOT NULL REFERENCES tenants (id),
    backup_id         bigint NOT NULL REFERENCES tenant_backups (id),
    into_new          boolean NOT NULL,
    phase             text NOT NULL DEFAULT 'pending'
                      CHECK (phase IN ('pending', 'verified', 'stopped', 'backed_up', 'restored',
                                       'done', 'failed', 'abandoned')),
    safety_backup_id  bigint REFERENCES tenant_backups (id),
    requested_by      uuid REFERENCES users (id),
    error             text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz
);
CREATE UNIQUE INDEX tenant_restores_open_key ON tenant_restores (tenant_id)
    WHERE phase IN ('pending', 'verified', 'stopped', 'backed_up', 'restored');
CREATE INDEX tenant_restores_tenant_idx ON tenant_restores (tenant_id, id DESC);
