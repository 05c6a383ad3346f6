//! Mail to owners about their instances: a deployment finished or failed, an
//! instance went down or crash-looped, a resource alert started, the setup
//! window closes soon while nobody has claimed the instance.
//!
//! The notifier reads what the reconciler and the usage sampler already write
//! (the deployment log, the tenant event history, the tenants) and looks at
//! running containers' health itself; it wakes on tenant activity and on a
//! timer. Each event is recorded under a unique key *before* its mail goes out,
//! so it is mailed at most once however often it is seen, and "down" mails keep
//! a minimum gap per instance, so a flapping instance sends one. A mail never
//! carries a secret: no database password, no setup token (it points to the
//! dashboard, where the owner finds the setup link), no container output.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

use crate::config::{NotifyConfig, TenantConfig};
use crate::domain::TenantId;
use crate::mail::{Mailer, OutgoingMail};
use crate::provision::runtime::Health;
use crate::provision::TenantRuntime;
use crate::store::notifications::{self as store, Kind, Outcome, Owner};
use crate::store::notify::Activity;
use crate::store::StoreError;

/// How long after a wake-up the notifier waits for the rest of a burst of
/// activity (a deployment writes several rows) before it looks.
const SETTLE: Duration = Duration::from_millis(300);

use crate::domain::SETUP_WINDOW_HOURS;

/// What a mail is about, in words an owner reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Deployed {
        action: String,
    },
    Failed {
        action: String,
    },
    /// The reconciler found the container stopped and is starting it again.
    Down,
    /// The reconciler could not bring it back (a crash loop, for instance).
    DownForGood,
    Unhealthy,
    Restarted,
    ResourceAlert {
        resource: String,
        percent: f64,
    },
    SetupDeadline {
        deadline: DateTime<Utc>,
    },
}

impl Event {
    fn kind(&self) -> Kind {
        match self {
            Self::Deployed { .. } | Self::Failed { .. } => Kind::Deployment,
            Self::Down | Self::DownForGood | Self::Unhealthy | Self::Restarted => {
                Kind::InstanceDown
            }
            Self::ResourceAlert { .. } => Kind::ResourceAlert,
            Self::SetupDeadline { .. } => Kind::SetupDeadline,
        }
    }

    /// Down mails keep a gap, except the one saying it stays down (it happens
    /// once, and the owner must act).
    fn gap_limited(&self) -> bool {
        matches!(self, Self::Down | Self::Unhealthy | Self::Restarted)
    }
}

/// Links and names a mail needs besides the event.
pub struct MailContext<'a> {
    pub tenant_id: Uuid,
    pub subdomain: &'a str,
    pub tenant_url: &'a str,
    pub platform_url: &'a str,
}

/// The mail for an event. Only the instance's name, its address, the platform's
/// pages and the event's own words: nothing secret can reach it.
pub fn compose(event: &Event, to: &str, cx: &MailContext<'_>) -> OutgoingMail {
    let sub = cx.subdomain;
    // The instance's own page in the dashboard: status, log, setup link.
    let dashboard = format!("{}/instances/{}", cx.platform_url, cx.tenant_id);
    let (subject, what) = match event {
        Event::Deployed { action } if action == "create" => (
            format!("Your Fresco instance {sub} is ready"),
            format!(
                "Your Fresco instance {sub} finished deploying and is running at {url}.\n\n\
                 Fresco gives its first-run setup (creating its admin account) to whoever \
                 opens it first, within 2 hours of its first start. Open your dashboard to \
                 find the setup link: {dashboard}",
                url = cx.tenant_url
            ),
        ),
        Event::Deployed { .. } => (
            format!("New settings applied to {sub}"),
            format!(
                "Your Fresco instance {sub} was deployed again with its new settings and is \
                 running at {url}.",
                url = cx.tenant_url
            ),
        ),
        Event::Failed { action } => (
            format!("The {} of {sub} failed", action_noun(action)),
            format!(
                "The {} of your Fresco instance {sub} failed. The reason and the instance's \
                 deployment history are on your dashboard, where you can try again: {dashboard}",
                action_noun(action)
            ),
        ),
        Event::Down => (
            format!("Your Fresco instance {sub} went down"),
            format!(
                "Your Fresco instance {sub} stopped unexpectedly. The platform is starting it \
                 again; its status and log are on your dashboard: {dashboard}"
            ),
        ),
        Event::DownForGood => (
            format!("Your Fresco instance {sub} is down and needs you"),
            format!(
                "Your Fresco instance {sub} stopped and could not be started again (it may be \
                 crashing at start-up). Its error and log are on your dashboard, where you can \
                 restart it: {dashboard}"
            ),
        ),
        Event::Unhealthy => (
            format!("Your Fresco instance {sub} is not responding"),
            format!(
                "Your Fresco instance {sub} is failing its health check, so visitors cannot \
                 reach it. Its status and log are on your dashboard: {dashboard}"
            ),
        ),
        Event::Restarted => (
            format!("Your Fresco instance {sub} crashed and restarted"),
            format!(
                "Your Fresco instance {sub} crashed and was restarted. If it keeps happening, \
                 its log on your dashboard shows why: {dashboard}"
            ),
        ),
        Event::ResourceAlert { resource, percent } => (
            format!("{sub} is running short of {resource}"),
            format!(
                "Your Fresco instance {sub} has used {percent:.0}% of its {resource} limit for a \
                 while. It may slow down or restart; its usage is on your dashboard: {dashboard}"
            ),
        ),
        Event::SetupDeadline { deadline } => {
            let minutes = (*deadline - Utc::now()).num_minutes().max(1);
            (
                format!("Set up {sub} before its setup window closes"),
                format!(
                    "Nobody has set up your Fresco instance {sub} yet. Its first-run setup \
                     closes at {} UTC (in about {minutes} minutes); after that Fresco refuses \
                     it. Open your dashboard to find the setup link: {dashboard}",
                    deadline.format("%Y-%m-%d %H:%M")
                ),
            )
        }
    };
    let body = format!(
        "{what}\n\n--\nYou get this mail because you own {sub} on Fresco Platform. Choose which \
         mails you get: {}/settings/notifications\n",
        cx.platform_url
    );
    OutgoingMail {
        to: to.to_owned(),
        subject,
        body,
    }
}

fn action_noun(action: &str) -> &str {
    match action {
        "create" => "deployment",
        "update" => "settings update",
        "start" => "start",
        "stop" => "stop",
        "restart" => "restart",
        "destroy" => "removal",
        _ => "recovery",
    }
}

/// The background task. Cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    pool: sqlx::PgPool,
    runtime: Arc<dyn TenantRuntime>,
    mailer: Mailer,
    cfg: NotifyConfig,
    tenants: TenantConfig,
    platform_url: String,
    /// The restart count each running container had when first seen, so
    /// restarts from before this process are not news.
    restarts: std::sync::Mutex<HashMap<Uuid, (String, i64)>>,
}

impl Notifier {
    pub fn new(
        pool: sqlx::PgPool,
        runtime: Arc<dyn TenantRuntime>,
        mailer: Mailer,
        cfg: NotifyConfig,
        tenants: TenantConfig,
        platform_url: &str,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                runtime,
                mailer,
                cfg,
                tenants,
                platform_url: platform_url.trim_end_matches('/').to_owned(),
                restarts: Default::default(),
            }),
        }
    }

    /// Looks on every tick and whenever a tenant's activity is reported, until
    /// `shutdown`.
    pub async fn run(self, activity: Activity, shutdown: CancellationToken) {
        let mut changes = activity.subscribe();
        let mut tick = tokio::time::interval(Duration::from_secs(
            self.inner.cfg.notify_interval_secs.max(1),
        ));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        info!("notifier started");
        loop {
            let look_at_containers = tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => true,
                change = changes.recv() => match change {
                    Ok(_) | Err(RecvError::Lagged(_)) => {
                        tokio::time::sleep(SETTLE).await;
                        while changes.try_recv().is_ok() {}
                        false
                    }
                    Err(RecvError::Closed) => {
                        changes = activity.subscribe();
                        false
                    }
                },
            };
            if let Err(e) = self.pass(look_at_containers).await {
                warn!(error = %e, "notifier pass failed");
            }
        }
        info!("notifier stopped");
    }

    /// One look at everything that may deserve a mail.
    pub async fn pass(&self, look_at_containers: bool) -> Result<(), StoreError> {
        let pool = &self.inner.pool;
        for e in store::new_log_events(pool).await? {
            let event = match (e.action.as_str(), e.status.as_str()) {
                ("recover", "initiated") => Event::Down,
                ("recover", _) => Event::DownForGood,
                (action, "success") => Event::Deployed {
                    action: action.to_owned(),
                },
                (action, _) => Event::Failed {
                    action: action.to_owned(),
                },
            };
            self.notify(&e.owner, event, &format!("log:{}", e.id))
                .await?;
        }
        for a in store::new_alerts(pool).await? {
            let event = Event::ResourceAlert {
                resource: a.metadata["resource"]
                    .as_str()
                    .unwrap_or("memory or CPU")
                    .to_owned(),
                percent: a.metadata["percentOfLimit"].as_f64().unwrap_or(0.0),
            };
            self.notify(&a.owner, event, &format!("event:{}", a.id))
                .await?;
        }
        let warning = self.inner.cfg.notify_setup_deadline_warning_mins;
        for s in store::setup_deadlines_near(pool, SETUP_WINDOW_HOURS, warning).await? {
            let event = Event::SetupDeadline {
                deadline: s.deadline,
            };
            self.notify(&s.owner, event, "setup").await?;
        }
        if look_at_containers {
            self.look_at_containers().await?;
        }
        Ok(())
    }

    /// Health and restarts of running containers are Docker's to know: the
    /// reconciler acts only on a stopped container, so these are read here.
    async fn look_at_containers(&self) -> Result<(), StoreError> {
        let owners = store::running_owners(&self.inner.pool).await?;
        for owner in owners {
            let info = match self.inner.runtime.inspect(TenantId(owner.tenant_id)).await {
                Ok(Some(info)) => info,
                Ok(None) => continue,
                Err(e) => {
                    warn!(error = %e, "notifier could not inspect a container");
                    return Ok(());
                }
            };
            let restarted = {
                let mut seen = self
                    .inner
                    .restarts
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                let entry = seen
                    .entry(owner.tenant_id)
                    .or_insert_with(|| (info.id.clone(), info.restart_count));
                let more = entry.0 == info.id && info.restart_count > entry.1;
                *entry = (info.id.clone(), info.restart_count);
                more
            };
            if restarted {
                let key = format!("restart:{}:{}", info.id, info.restart_count);
                self.notify(&owner, Event::Restarted, &key).await?;
            }
            if info.health == Health::Unhealthy {
                let started = info.started_at.map(|s| s.timestamp()).unwrap_or_default();
                let key = format!("unhealthy:{}:{started}", info.id);
                self.notify(&owner, Event::Unhealthy, &key).await?;
            }
        }
        Ok(())
    }

    /// Records the event, then mails it if the owner wants it and (for down
    /// mails) none went out lately.
    async fn notify(&self, owner: &Owner, event: Event, key: &str) -> Result<(), StoreError> {
        let pool = &self.inner.pool;
        let kind = event.kind();
        let outcome = if !owner.prefs.wants(kind) {
            Outcome::SwitchedOff
        } else if event.gap_limited()
            && store::mailed_within(
                pool,
                owner.tenant_id,
                kind,
                self.inner.cfg.notify_down_gap_mins,
            )
            .await?
        {
            Outcome::Suppressed
        } else {
            Outcome::Sending
        };
        if !store::record(pool, owner, kind, key, outcome).await? || outcome != Outcome::Sending {
            return Ok(());
        }
        let tenant_url = self.inner.tenants.tenant_url(&owner.subdomain);
        let cx = MailContext {
            tenant_id: owner.tenant_id,
            subdomain: &owner.subdomain,
            tenant_url: &tenant_url,
            platform_url: &self.inner.platform_url,
        };
        let mail = compose(&event, &owner.email, &cx);
        // Sent once: a failed send is recorded, not retried, so a broken mail
        // server cannot turn into a storm once it is back.
        let result = match self.inner.mailer.send(mail).await {
            Ok(()) => Outcome::Sent,
            Err(e) => {
                warn!(error = %e, tenant_id = %owner.tenant_id, kind = kind.as_str(), "notification mail failed");
                Outcome::Failed
            }
        };
        store::set_outcome(pool, owner.tenant_id, kind, key, result).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx() -> MailContext<'static> {
        MailContext {
            tenant_id: Uuid::nil(),
            subdomain: "my-study",
            tenant_url: "https://my-study.fresco.example",
            platform_url: "https://platform.example",
        }
    }

    #[test]
    fn every_mail_names_the_instance_links_the_dashboard_and_the_preferences() {
        let events = [
            Event::Deployed {
                action: "create".into(),
            },
            Event::Deployed {
                action: "update".into(),
            },
            Event::Failed {
                action: "restart".into(),
            },
            Event::Down,
            Event::DownForGood,
            Event::Unhealthy,
            Event::Restarted,
            Event::ResourceAlert {
                resource: "memory".into(),
                percent: 91.4,
            },
            Event::SetupDeadline {
                deadline: Utc::now() + chrono::Duration::minutes(29),
            },
        ];
        for event in events {
            let mail = compose(&event, "ada@example.org", &cx());
            assert!(
                mail.subject.contains("my-study"),
                "{event:?}: {}",
                mail.subject
            );
            assert!(!mail.subject.contains('\n'));
            assert!(
                mail.body
                    .contains("https://platform.example/settings/notifications"),
                "{event:?}"
            );
            assert!(
                mail.body.contains(
                    "https://platform.example/instances/00000000-0000-0000-0000-000000000000"
                ) || matches!(event, Event::Deployed { ref action } if action == "update"),
                "{event:?}: {}",
                mail.body
            );
            assert!(!mail.body.contains("token"), "{event:?}");
        }
    }

    #[test]
    fn the_setup_warning_gives_the_time_left_and_no_link_with_a_token() {
        let deadline = Utc::now() + chrono::Duration::minutes(30);
        let mail = compose(&Event::SetupDeadline { deadline }, "a@b.c", &cx());
        assert!(mail.body.contains("about 29 minutes") || mail.body.contains("about 30 minutes"));
        assert!(mail.body.contains("find the setup link"));
        assert!(!mail.body.contains("claim"), "{}", mail.body);
    }

    #[test]
    fn only_passing_trouble_is_gap_limited() {
        assert!(Event::Down.gap_limited());
        assert!(Event::Unhealthy.gap_limited());
        assert!(!Event::DownForGood.gap_limited());
        assert_eq!(Event::Restarted.kind(), Kind::InstanceDown);
    }
}
