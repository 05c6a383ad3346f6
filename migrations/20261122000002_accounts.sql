-- Accounts: passwords, sessions, one-time email tokens, self-service API keys,
-- the signup wizard's sessions and the audit trail.

ALTER TABLE users
    ADD COLUMN name               text,
    ADD COLUMN password_hash      text,
    ADD COLUMN email_verified_at  timestamptz;

ALTER TABLE api_keys ADD COLUMN last_used_ip text;

CREATE TABLE sessions (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash    bytea NOT NULL UNIQUE,
    remember      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    ip            text,
    user_agent    text
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);

CREATE TABLE email_tokens (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     text NOT NULL CHECK (purpose IN ('verify_email', 'password_reset')),
    token_hash  bytea NOT NULL UNIQUE,
    email       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX email_tokens_user_idx ON email_tokens (user_id, purpose);

CREATE TABLE signup_sessions (
    id                   uuid PRIMARY KEY,
    email                text NOT NULL,
    login_required       boolean NOT NULL DEFAULT false,
    name                 text,
    password_hash        text,
    intended_use         text CHECK (intended_use IN ('study', 'testing', 'learning', 'other')),
    intended_use_other   text,
    subdomain            text,
    terms_version        text,
    terms_accepted_at    timestamptz,
    steps_done           integer NOT NULL DEFAULT 0,
    user_id              uuid REFERENCES users (id),
    tenant_id            uuid REFERENCES tenants (id),
    deployed_at          timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    expires_at           timestamptz NOT NULL
);

CREATE TABLE audit_log (
    id           bigserial PRIMARY KEY,
    user_id      uuid REFERENCES users (id) ON DELETE SET NULL,
    action       text NOT NULL,
    target_type  text,
    target_id    text,
    ip           text,
    user_agent   text,
    metadata     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX audit_log_user_idx ON audit_log (user_id, id);
CREATE INDEX audit_log_action_idx ON audit_log (action, id);

-- Where the reconciler is in a tenant's deployment, for the wizard's progress step.
ALTER TABLE tenants ADD COLUMN progress text;
