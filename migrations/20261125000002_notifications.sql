-- Owner notifications: which mails each user wants (every kind on until they
-- switch it off), and one row per event the notifier has dealt with, so each
-- event is mailed at most once however often it is seen.

CREATE TABLE notification_preferences (
    user_id         uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    deployment      boolean NOT NULL DEFAULT true,
    instance_down   boolean NOT NULL DEFAULT true,
    resource_alert  boolean NOT NULL DEFAULT true,
    setup_deadline  boolean NOT NULL DEFAULT true,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- `event_key` names the event within its tenant and kind (a deployment-log id,
-- an alert's event id, a down episode, a setup deadline). The row is written
-- before the mail goes out: a second sight of the same event finds it and sends
-- nothing. `outcome` says what became of it.
CREATE TABLE notifications_sent (
    id          bigserial PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('deployment', 'instance_down', 'resource_alert',
                                              'setup_deadline')),
    event_key   text NOT NULL,
    outcome     text NOT NULL DEFAULT 'sending'
                CHECK (outcome IN ('sending', 'sent', 'failed', 'switched_off', 'suppressed')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, kind, event_key)
);
CREATE INDEX notifications_sent_recent ON notifications_sent (tenant_id, kind, created_at);

-- Events older than the notifier itself are history, never mailed.
CREATE TABLE notifier_state (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    started_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO notifier_state DEFAULT VALUES;

-- The notifier looks at recent history only.
CREATE INDEX deployment_logs_created_idx ON deployment_logs (created_at);
CREATE INDEX tenant_events_created_idx ON tenant_events (created_at);
