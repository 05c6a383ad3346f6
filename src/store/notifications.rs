//! Owner notifications: each user's mail preferences, the events worth a mail
//! (read from the deployment log, the tenant event history and the tenants
//! themselves), and the record of every event already dealt with, whose unique
//! key makes "once per event" hold however often an event is seen.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::StoreError;

/// The kinds of mail an owner can switch on and off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A deployment (create or settings update) finished, or an action failed.
    Deployment,
    /// A running instance stopped, failed its health check or crash-looped.
    InstanceDown,
    /// A resource alert started.
    ResourceAlert,
    /// The setup window closes soon and the instance is still unclaimed.
    SetupDeadline,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Self::Deployment,
        Self::InstanceDown,
        Self::ResourceAlert,
        Self::SetupDeadline,
    ];

    /// The column in `notification_preferences` and the `kind` of a record.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deployment => "deployment",
            Self::InstanceDown => "instance_down",
            Self::ResourceAlert => "resource_alert",
            Self::SetupDeadline => "setup_deadline",
        }
    }
}

/// Which mails a user wants; every kind is on until switched off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Preferences {
    pub deployment: bool,
    pub instance_down: bool,
    pub resource_alert: bool,
    pub setup_deadline: bool,
}

impl Default for Preferences {
    fn default() -> Self {
        Self {
            deployment: true,
            instance_down: true,
            resource_alert: true,
            setup_deadline: true,
        }
    }
}

impl Preferences {
    pub fn wants(&self, kind: Kind) -> bool {
        match kind {
            Kind::Deployment => self.deployment,
            Kind::InstanceDown => self.instance_down,
            Kind::ResourceAlert => self.resource_alert,
            Kind::SetupDeadline => self.setup_deadline,
        }
    }
}

pub async fn preferences(pool: &PgPool, user: Uuid) -> Result<Preferences, StoreError> {
    let found = sqlx::query_as::<_, Preferences>(
        "SELECT deployment, instance_down, resource_alert, setup_deadline
           FROM notification_preferences WHERE user_id = $1",
    )
    .bind(user)
    .fetch_optional(pool)
    .await?;
    Ok(found.unwrap_or_default())
}

pub async fn save_preferences(
    pool: &PgPool,
    user: Uuid,
    prefs: Preferences,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO notification_preferences
                (user_id, deployment, instance_down, resource_alert, setup_deadline)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (user_id) DO UPDATE
            SET deployment = $2, instance_down = $3, resource_alert = $4,
                setup_deadline = $5, updated_at = now()",
    )
    .bind(user)
    .bind(prefs.deployment)
    .bind(prefs.instance_down)
    .bind(prefs.resource_alert)
    .bind(prefs.setup_deadline)
    .execute(pool)
    .await?;
    Ok(())
}

/// Who owns a tenant, and what they want to hear about it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Owner {
    pub tenant_id: Uuid,
    pub subdomain: String,
    pub user_id: Uuid,
    pub email: String,
    #[sqlx(flatten)]
    pub prefs: Preferences,
}

const OWNER_COLUMNS: &str = "t.id AS tenant_id, t.subdomain, t.user_id, u.email,
    COALESCE(p.deployment, true) AS deployment, COALESCE(p.instance_down, true) AS instance_down,
    COALESCE(p.resource_alert, true) AS resource_alert,
    COALESCE(p.setup_deadline, true) AS setup_deadline";

const OWNER_JOINS: &str = "JOIN users u ON u.id = t.user_id
    LEFT JOIN notification_preferences p ON p.user_id = t.user_id";

/// History older than this, or older than the notifier itself, is never mailed.
const WINDOW: &str = "(SELECT greatest(started_at, now() - interval '1 day') FROM notifier_state)";

/// A deployment-log row that may deserve a mail, not yet dealt with.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LogEvent {
    pub id: i64,
    pub action: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    #[sqlx(flatten)]
    pub owner: Owner,
}

/// Finished or failed deployments and failed actions, and the reconciler's
/// recoveries of running instances (the instance was down), oldest first.
/// An owner's own start, stop or restart that succeeded is not news to them.
pub async fn new_log_events(pool: &PgPool) -> Result<Vec<LogEvent>, StoreError> {
    Ok(sqlx::query_as::<_, LogEvent>(&format!(
        "SELECT d.id, d.action, d.status, d.created_at, {OWNER_COLUMNS}
           FROM deployment_logs d JOIN tenants t ON t.id = d.tenant_id {OWNER_JOINS}
          WHERE d.created_at > {WINDOW}
            AND ((d.action IN ('create', 'update') AND d.status IN ('success', 'failed'))
                 OR (d.action IN ('start', 'stop', 'restart', 'destroy') AND d.status = 'failed')
                 OR (d.action = 'recover' AND d.status = 'failed')
                 OR (d.action = 'recover' AND d.status = 'initiated'
                     AND t.desired_state = 'running'))
            AND NOT EXISTS (SELECT 1 FROM notifications_sent n
                             WHERE n.tenant_id = d.tenant_id AND n.event_key = 'log:' || d.id)
          ORDER BY d.id LIMIT 200"
    ))
    .fetch_all(pool)
    .await?)
}

/// A resource alert that started, not yet dealt with.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AlertEvent {
    pub id: i64,
    pub metadata: Value,
    #[sqlx(flatten)]
    pub owner: Owner,
}

pub async fn new_alerts(pool: &PgPool) -> Result<Vec<AlertEvent>, StoreError> {
    Ok(sqlx::query_as::<_, AlertEvent>(&format!(
        "SELECT e.id, e.metadata, {OWNER_COLUMNS}
           FROM tenant_events e JOIN tenants t ON t.id = e.tenant_id {OWNER_JOINS}
          WHERE e.kind = 'resource_alert' AND e.created_at > {WINDOW}
            AND NOT EXISTS (SELECT 1 FROM notifications_sent n
                             WHERE n.tenant_id = e.tenant_id AND n.event_key = 'event:' || e.id)
          ORDER BY e.id LIMIT 200"
    ))
    .fetch_all(pool)
    .await?)
}

/// An unclaimed instance whose setup window closes within the warning time.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SetupDue {
    pub deadline: DateTime<Utc>,
    #[sqlx(flatten)]
    pub owner: Owner,
}

/// Active instances whose setup window (`window_hours` from Fresco's first
/// start) closes within `warning_mins`, whose owner has not used a setup link,
/// and that were not warned about yet (one warning per instance).
pub async fn setup_deadlines_near(
    pool: &PgPool,
    window_hours: i64,
    warning_mins: i64,
) -> Result<Vec<SetupDue>, StoreError> {
    Ok(sqlx::query_as::<_, SetupDue>(&format!(
        "SELECT d.* FROM (
            SELECT COALESCE(t.fresco_initialized_at, t.first_started_at)
                       + make_interval(hours => $1::int) AS deadline, {OWNER_COLUMNS}
              FROM tenants t {OWNER_JOINS}
             WHERE t.status = 'active' AND t.desired_state = 'running'
               AND NOT EXISTS (SELECT 1 FROM setup_claims c WHERE c.tenant_id = t.id
                                  AND c.kind = 'link' AND c.used_at IS NOT NULL)
               AND NOT EXISTS (SELECT 1 FROM notifications_sent n
                                WHERE n.tenant_id = t.id AND n.kind = 'setup_deadline')
         ) d
         WHERE d.deadline > now() AND d.deadline <= now() + make_interval(mins => $2::int)"
    ))
    .bind(window_hours as i32)
    .bind(warning_mins.clamp(0, i32::MAX as i64) as i32)
    .fetch_all(pool)
    .await?)
}

/// Running instances, for the health look the notifier takes itself.
pub async fn running_owners(pool: &PgPool) -> Result<Vec<Owner>, StoreError> {
    Ok(sqlx::query_as::<_, Owner>(&format!(
        "SELECT {OWNER_COLUMNS} FROM tenants t {OWNER_JOINS}
          WHERE t.status = 'active' AND t.desired_state = 'running'"
    ))
    .fetch_all(pool)
    .await?)
}

/// What became of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The mail is about to go out.
    Sending,
    Sent,
    Failed,
    /// The owner switched this kind off.
    SwitchedOff,
    /// Another mail of this kind went to the owner too recently.
    Suppressed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::SwitchedOff => "switched_off",
            Self::Suppressed => "suppressed",
        }
    }
}

/// Records the event; `false` when it was already recorded (then nothing is
/// to be sent for it).
pub async fn record(
    pool: &PgPool,
    owner: &Owner,
    kind: Kind,
    event_key: &str,
    outcome: Outcome,
) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO notifications_sent (tenant_id, user_id, kind, event_key, outcome)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (tenant_id, kind, event_key) DO NOTHING",
    )
    .bind(owner.tenant_id)
    .bind(owner.user_id)
    .bind(kind.as_str())
    .bind(event_key)
    .bind(outcome.as_str())
    .execute(pool)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

pub async fn set_outcome(
    pool: &PgPool,
    tenant: Uuid,
    kind: Kind,
    event_key: &str,
    outcome: Outcome,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE notifications_sent SET outcome = $4
          WHERE tenant_id = $1 AND kind = $2 AND event_key = $3",
    )
    .bind(tenant)
    .bind(kind.as_str())
    .bind(event_key)
    .bind(outcome.as_str())
    .execute(pool)
    .await?;
    Ok(())
}

/// Was a mail of this kind about this tenant sent (or begun) in the last
/// `gap_mins` minutes?
pub async fn mailed_within(
    pool: &PgPool,
    tenant: Uuid,
    kind: Kind,
    gap_mins: i64,
) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar::<_, bool>(
        "SELECT EXISTS (SELECT 1 FROM notifications_sent
                         WHERE tenant_id = $1 AND kind = $2 AND outcome IN ('sending', 'sent')
                           AND created_at > now() - make_interval(mins => $3::int))",
    )
    .bind(tenant)
    .bind(kind.as_str())
    .bind(gap_mins.clamp(0, i32::MAX as i64) as i32)
    .fetch_one(pool)
    .await?)
}
