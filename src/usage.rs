//! Tenant resource usage: a sampler that records every active tenant at an
//! interval (Docker stats calls in parallel, one batched insert per pass),
//! retention, CPU percentages from consecutive samples, and sustained-use
//! alerts. (The platform's own Prometheus metrics are `telemetry`.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{ObserveConfig, TenantConfig};
use crate::domain::TenantId;
use crate::provision::runtime::StatsSample;
use crate::provision::spec::ResourceLimits;
use crate::provision::TenantRuntime;
use crate::store::tenants::{self, Tenant};
use crate::store::usage::{self as store, NewPoint, UsagePoint};
use crate::telemetry::Telemetry;

/// What a tenant uses now.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CurrentMetrics)]
pub struct CurrentUsage {
    /// Share of one core ×100 (as `docker stats`); null until two samples exist.
    pub cpu_percent: Option<f64>,
    /// CPU use as a share of the tenant's CPU limit.
    pub cpu_of_limit_percent: Option<f64>,
    pub memory_bytes: u64,
    pub memory_limit_bytes: u64,
    pub memory_percent: f64,
    pub network_rx_bytes: u64,
    pub network_tx_bytes: u64,
    pub block_read_bytes: u64,
    pub block_write_bytes: u64,
    pub pids: u64,
    pub sampled_at: chrono::DateTime<Utc>,
}

#[derive(Default)]
struct Tracked {
    last: Option<StatsSample>,
    digested: Option<CurrentUsage>,
    high_streak: u32,
    alerting: bool,
}

/// One sampler pass, measured.
#[derive(Debug, Clone, Copy)]
pub struct PassReport {
    pub tenants: usize,
    pub sampled: usize,
    pub elapsed: Duration,
}

#[derive(Clone)]
pub struct Usage {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    runtime: Arc<dyn TenantRuntime>,
    tenants: TenantConfig,
    cfg: ObserveConfig,
    telemetry: Arc<Telemetry>,
    tracked: Mutex<HashMap<TenantId, Tracked>>,
}

fn cpu_percent(previous: &StatsSample, now: &StatsSample) -> Option<f64> {
    let cpu = now.cpu_total_ns.checked_sub(previous.cpu_total_ns)? as f64;
    let system = now.system_cpu_ns.checked_sub(previous.system_cpu_ns)? as f64;
    (system > 0.0).then(|| cpu / system * now.online_cpus.max(1) as f64 * 100.0)
}

impl Usage {
    pub fn new(
        pool: PgPool,
        runtime: Arc<dyn TenantRuntime>,
        tenants: TenantConfig,
        cfg: ObserveConfig,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                runtime,
                tenants,
                cfg,
                telemetry,
                tracked: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn config(&self) -> &ObserveConfig {
        &self.inner.cfg
    }

    fn cpu_limit(&self, tenant: &Tenant) -> f64 {
        serde_json::from_value::<ResourceLimits>(tenant.resource_limits.clone())
            .ok()
            .and_then(|l| l.cpus)
            .unwrap_or(self.inner.tenants.cpus)
    }

    /// Turns a raw sample into percentages, against the previous sample of the
    /// same tenant, and remembers it.
    fn digest(&self, tenant: &Tenant, sample: StatsSample) -> CurrentUsage {
        let mut tracked = self.inner.tracked.lock().unwrap_or_else(|p| p.into_inner());
        let entry = tracked.entry(tenant.tenant_id()).or_default();
        let cpu = entry
            .last
            .as_ref()
            .and_then(|prev| cpu_percent(prev, &sample));
        let limit = self.cpu_limit(tenant);
        let current = CurrentUsage {
            cpu_percent: cpu,
            cpu_of_limit_percent: cpu.map(|c| c / (limit.max(0.01) * 100.0) * 100.0),
            memory_bytes: sample.memory_bytes,
            memory_limit_bytes: sample.memory_limit_bytes,
            memory_percent: if sample.memory_limit_bytes > 0 {
                sample.memory_bytes as f64 / sample.memory_limit_bytes as f64 * 100.0
            } else {
                0.0
            },
            network_rx_bytes: sample.network_rx_bytes,
            network_tx_bytes: sample.network_tx_bytes,
            block_read_bytes: sample.block_read_bytes,
            block_write_bytes: sample.block_write_bytes,
            pids: sample.pids,
            sampled_at: sample.at,
        };
        entry.last = Some(sample);
        entry.digested = Some(current.clone());
        current
    }

    /// The tenant's use right now; None when its container is not running.
    pub async fn current(&self, tenant: &Tenant) -> Option<CurrentUsage> {
        match self.inner.runtime.stats(tenant.tenant_id()).await {
            Ok(Some(sample)) => Some(self.digest(tenant, sample)),
            Ok(None) => None,
            Err(e) => {
                self.inner.telemetry.docker_errors.inc();
                warn!(error = %e, "stats failed");
                None
            }
        }
    }

    /// The tenant's use as of at most `max_age` ago: the last sample when it is
    /// fresh enough, else a new one. Keeps a busy page (or a poller) from
    /// turning every read into a Docker stats call.
    pub async fn recent(&self, tenant: &Tenant, max_age: Duration) -> Option<CurrentUsage> {
        let cached = {
            let tracked = self.inner.tracked.lock().unwrap_or_else(|p| p.into_inner());
            tracked
                .get(&tenant.tenant_id())
                .and_then(|t| t.digested.clone())
        };
        match cached {
            Some(m)
                if (Utc::now() - m.sampled_at)
                    .to_std()
                    .is_ok_and(|age| age <= max_age) =>
            {
                Some(m)
            }
            _ => self.current(tenant).await,
        }
    }

    /// Samples every active tenant once: stats calls in parallel (bounded), one
    /// insert, retention, alerts.
    pub async fn pass(&self) -> Result<PassReport, crate::store::StoreError> {
        let started = Instant::now();
        let active = tenants::active(&self.inner.pool).await?;
        let concurrency = self.inner.cfg.sampler_concurrency.max(1);
        let results: Vec<(Tenant, Option<CurrentUsage>)> =
            futures::stream::iter(active.iter().cloned())
                .map(|t| async move {
                    let current = self.current(&t).await;
                    (t, current)
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
        let points: Vec<NewPoint> = results
            .iter()
            .filter_map(|(t, m)| {
                m.as_ref().map(|m| NewPoint {
                    tenant: t.tenant_id(),
                    point: UsagePoint {
                        at: m.sampled_at,
                        cpu_percent: m.cpu_percent,
                        memory_bytes: m.memory_bytes as i64,
                        memory_limit_bytes: m.memory_limit_bytes as i64,
                        network_rx_bytes: m.network_rx_bytes as i64,
                        network_tx_bytes: m.network_tx_bytes as i64,
                        block_read_bytes: m.block_read_bytes as i64,
                        block_write_bytes: m.block_write_bytes as i64,
                        pids: m.pids as i64,
                    },
                })
            })
            .collect();
        store::insert(&self.inner.pool, &points).await?;
        let horizon = Utc::now() - chrono::Duration::days(self.inner.cfg.metrics_retention_days);
        store::prune(&self.inner.pool, horizon).await?;
        for (tenant, current) in &results {
            if let Some(m) = current {
                self.check_alert(tenant, m).await?;
            }
        }
        // Forget tenants that are no longer active.
        let live: std::collections::HashSet<TenantId> =
            active.iter().map(|t| t.tenant_id()).collect();
        self.inner
            .tracked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|id, _| live.contains(id));
        Ok(PassReport {
            tenants: active.len(),
            sampled: points.len(),
            elapsed: started.elapsed(),
        })
    }

    async fn check_alert(
        &self,
        tenant: &Tenant,
        m: &CurrentUsage,
    ) -> Result<(), crate::store::StoreError> {
        let threshold = self.inner.cfg.alert_threshold_percent;
        let memory_high = m.memory_percent > threshold;
        let cpu_high = m.cpu_of_limit_percent.is_some_and(|c| c > threshold);
        let (raise, clear) = {
            let mut tracked = self.inner.tracked.lock().unwrap_or_else(|p| p.into_inner());
            let entry = tracked.entry(tenant.tenant_id()).or_default();
            entry.high_streak = if memory_high || cpu_high {
                entry.high_streak + 1
            } else {
                0
            };
            let sustained = entry.high_streak >= self.inner.cfg.alert_sustained_samples.max(1);
            let raise = sustained && !entry.alerting && tenant.resource_alert.is_none();
            let clear =
                entry.high_streak == 0 && (entry.alerting || tenant.resource_alert.is_some());
            if raise {
                entry.alerting = true;
            }
            if clear {
                entry.alerting = false;
            }
            (raise, clear)
        };
        let id = tenant.tenant_id();
        if raise {
            let resource = if memory_high { "memory" } else { "cpu" };
            let percent = if memory_high {
                m.memory_percent
            } else {
                m.cpu_of_limit_percent.unwrap_or(0.0)
            };
            let alert = json!({ "resource": resource, "percentOfLimit": percent, "thresholdPercent": threshold, "since": Utc::now() });
            let message = format!(
                "{resource} above {threshold:.0}% of its limit for {} samples ({percent:.0}% now); consider raising the limit",
                self.inner.cfg.alert_sustained_samples
            );
            store::set_alert(
                &self.inner.pool,
                id,
                Some(alert),
                "resource_alert",
                &message,
            )
            .await?;
            self.inner.telemetry.resource_alerts.inc();
            info!(tenant_id = %id, resource, "resource alert raised");
        } else if clear {
            store::set_alert(
                &self.inner.pool,
                id,
                None,
                "resource_alert_cleared",
                "resource use back under the threshold",
            )
            .await?;
        }
        Ok(())
    }

    /// Samples at the configured interval until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(
            self.inner.cfg.metrics_interval_secs.max(1),
        ));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {
                    match self.pass().await {
                        Ok(report) => {
                            self.inner.telemetry.sampler_pass.observe(report.elapsed.as_secs_f64());
                            self.inner.telemetry.sampler_tenants.set(report.tenants as i64);
                        }
                        Err(e) => {
                            self.inner.telemetry.postgres_errors.inc();
                            warn!(error = %e, "usage sampler pass failed");
                        }
                    }
                }
            }
        }
    }
}
