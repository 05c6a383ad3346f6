-- Resource samples with retention, a tenant event history (resource alerts),
-- and notifications that feed the live status streams.

CREATE TABLE tenant_metrics (
    tenant_id           uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    sampled_at          timestamptz NOT NULL,
    cpu_percent         double precision,
    memory_bytes        bigint NOT NULL,
    memory_limit_bytes  bigint NOT NULL,
    network_rx_bytes    bigint NOT NULL,
    network_tx_bytes    bigint NOT NULL,
    block_read_bytes    bigint NOT NULL,
    block_write_bytes   bigint NOT NULL,
    pids                bigint NOT NULL,
    PRIMARY KEY (tenant_id, sampled_at)
);
CREATE INDEX tenant_metrics_sampled_at_idx ON tenant_metrics (sampled_at);

CREATE TABLE tenant_events (
    id          bigserial PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    kind        text NOT NULL,
    message     text NOT NULL,
    metadata    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX tenant_events_tenant_idx ON tenant_events (tenant_id, id);

-- Set while a tenant is above its resource alert threshold.
ALTER TABLE tenants ADD COLUMN resource_alert jsonb;

CREATE FUNCTION notify_tenant_activity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'tenants' THEN
        PERFORM pg_notify('fresco_tenant_activity',
            json_build_object('tenantId', NEW.id, 'kind', 'status')::text);
    ELSIF TG_TABLE_NAME = 'deployment_logs' THEN
        PERFORM pg_notify('fresco_tenant_activity',
            json_build_object('tenantId', NEW.tenant_id, 'kind', 'deployment', 'id', NEW.id)::text);
    ELSE
        PERFORM pg_notify('fresco_tenant_activity',
            json_build_object('tenantId', NEW.tenant_id, 'kind', 'event', 'id', NEW.id)::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER tenants_status_activity
    AFTER UPDATE ON tenants
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.progress IS DISTINCT FROM NEW.progress
          OR OLD.resource_alert IS DISTINCT FROM NEW.resource_alert)
    EXECUTE FUNCTION notify_tenant_activity();
CREATE TRIGGER deployment_logs_activity
    AFTER INSERT ON deployment_logs FOR EACH ROW EXECUTE FUNCTION notify_tenant_activity();
CREATE TRIGGER tenant_events_activity
    AFTER INSERT ON tenant_events FOR EACH ROW EXECUTE FUNCTION notify_tenant_activity();
