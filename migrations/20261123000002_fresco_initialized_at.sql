-- When Fresco recorded its first start (its AppSettings.initializedAt): Fresco
-- accepts its admin account for 2 hours from then, so the setup deadline shown
-- to the owner is counted from it (from first_started_at until it is known).
ALTER TABLE tenants ADD COLUMN fresco_initialized_at timestamptz;
