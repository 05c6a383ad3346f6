-- The Fresco options an owner may change (a fixed allow-list, never arbitrary
-- env). NULL keeps the platform's default; the reconciler puts the values into
-- the container's env, so a change alters the spec hash and recreates it.
ALTER TABLE tenants ADD COLUMN setting_disable_analytics boolean;
ALTER TABLE tenants ADD COLUMN setting_sandbox_mode boolean;
