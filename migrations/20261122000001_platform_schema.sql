-- Platform schema: accounts, API keys, tenants and their append-only deployment log.

-- Tenant roles must not be able to connect to the platform database unless
-- granted explicitly, nor use or create anything in `public`, where the
-- platform's own tables live.
DO $$
BEGIN
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
END
$$;
REVOKE ALL ON SCHEMA public FROM PUBLIC;

CREATE TABLE users (
    id          uuid PRIMARY KEY,
    email       text NOT NULL,
    role        text NOT NULL DEFAULT 'member' CHECK (role IN ('admin', 'member')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE api_keys (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          text NOT NULL,
    prefix        text NOT NULL,
    key_hash      bytea NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    expires_at    timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_keys_user_id_idx ON api_keys (user_id);

CREATE TABLE tenants (
    id                   uuid PRIMARY KEY,
    user_id              uuid NOT NULL REFERENCES users (id),
    tenant_identifier    text NOT NULL UNIQUE,
    subdomain            text NOT NULL CHECK (subdomain = lower(subdomain)),
    status               text NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'provisioning', 'active', 'stopped',
                                           'error', 'destroying', 'destroyed')),
    desired_state        text NOT NULL DEFAULT 'running'
                         CHECK (desired_state IN ('running', 'stopped', 'destroyed')),
    generation           bigint NOT NULL DEFAULT 1,
    observed_generation  bigint NOT NULL DEFAULT 0,
    current_action       text CHECK (current_action IN ('create', 'start', 'stop', 'restart',
                                                        'destroy', 'update', 'recover')),
    action_started_at    timestamptz,
    last_error           text,
    attempts             integer NOT NULL DEFAULT 0,
    next_attempt_at      timestamptz NOT NULL DEFAULT now(),
    image                text,
    container_id         text,
    first_started_at     timestamptz,
    last_deployed_at     timestamptz,
    metadata             jsonb NOT NULL DEFAULT '{}'::jsonb,
    resource_limits      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
-- A destroyed tenant frees its subdomain; two racing signups cannot both win.
CREATE UNIQUE INDEX tenants_live_subdomain_key ON tenants (subdomain) WHERE status <> 'destroyed';
CREATE INDEX tenants_user_id_idx ON tenants (user_id);
CREATE INDEX tenants_work_idx ON tenants (next_attempt_at)
    WHERE observed_generation < generation OR current_action IS NOT NULL;

CREATE TABLE deployment_logs (
    id             bigserial PRIMARY KEY,
    tenant_id      uuid NOT NULL REFERENCES tenants (id),
    action         text NOT NULL CHECK (action IN ('create', 'start', 'stop', 'restart',
                                                   'destroy', 'update', 'recover')),
    status         text NOT NULL CHECK (status IN ('initiated', 'success', 'failed')),
    error_message  text,
    metadata       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX deployment_logs_tenant_idx ON deployment_logs (tenant_id, id);

-- The lifecycle history is never rewritten.
CREATE FUNCTION deployment_logs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'deployment_logs is append-only';
END
$$;
CREATE TRIGGER deployment_logs_no_update
    BEFORE UPDATE OR DELETE ON deployment_logs
    FOR EACH ROW EXECUTE FUNCTION deployment_logs_append_only();
