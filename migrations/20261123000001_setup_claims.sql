-- Setup claims: who may open a fresh tenant's /setup (where Fresco gives the
-- instance to whoever creates its first admin account). A `link` token is
-- handed to the owner once and works once; using it issues a `cookie` token
-- for the owner's browser on the tenant's host. Only SHA-256 hashes are kept.
CREATE TABLE setup_claims (
    token_hash  bytea PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('link', 'cookie')),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX setup_claims_tenant ON setup_claims (tenant_id);
