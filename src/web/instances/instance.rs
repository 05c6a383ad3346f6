//! `GET /instances/{id}`: one instance: live status, URL, the setup link while
//! unclaimed (owner only), current usage and its history as charts, the
//! resource alert, the deployment history, quick actions and settings.

use std::time::Duration;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::chart::{self, Chart, Series};
use super::{human_bytes, visible, Badge};
use crate::http::caller::Caller;
use crate::http::tenants::{add_claim_link, setup_info, SetupInfo};
use crate::http::AppState;
use crate::store::deployments::{self, DeploymentLog};
use crate::store::tenants::Tenant;
use crate::store::usage;
use crate::web::error::WebError;
use crate::web::layout::{Layout, Section};
use crate::web::session::Member;

/// The history ranges offered: (query value, label, seconds).
pub const RANGES: [(&str, &str, i64); 4] = [
    ("1h", "1 hour", 3600),
    ("6h", "6 hours", 6 * 3600),
    ("24h", "24 hours", 24 * 3600),
    ("7d", "7 days", 7 * 24 * 3600),
];

/// Memory is charted in MiB, so its axis gets round numbers of them.
const MIB: f64 = 1024.0 * 1024.0;

/// At most this many points per chart.
const MAX_POINTS: i64 = 300;

#[derive(Deserialize)]
pub struct RangeQuery {
    range: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "instances/instance.html")]
pub struct InstancePage {
    pub layout: Layout,
    pub id: String,
    pub subdomain: String,
    pub url: String,
    pub badge: Badge,
    pub live: bool,
    pub last_error: Option<String>,
    pub setup: Option<SetupInfo>,
    pub current_cpu: Option<String>,
    pub current_memory: Option<String>,
    pub range: &'static str,
    pub ranges: [(&'static str, &'static str, i64); 4],
    pub charts: Vec<Chart>,
    pub resource_alert: Option<String>,
    pub deployments: Vec<DeploymentLog>,
    /// A refused action, when the page is shown again after one (no JS).
    pub alert: Option<String>,
    pub sandbox: bool,
    pub analytics_disabled: bool,
    /// When the tenant was read (Unix ms), for the live stream.
    pub seen: i64,
}

impl InstancePage {
    pub fn deadline_text(&self, at: &DateTime<Utc>) -> String {
        at.format("%Y-%m-%d %H:%M UTC").to_string()
    }

    pub fn when(&self, at: &DateTime<Utc>) -> String {
        at.format("%Y-%m-%d %H:%M:%S").to_string()
    }
}

pub async fn instance(
    State(state): State<AppState>,
    Member(caller): Member,
    Path(id): Path<String>,
    Query(q): Query<RangeQuery>,
    headers: HeaderMap,
) -> Result<InstancePage, WebError> {
    let tenant = visible(&state, &caller, &id).await?;
    let page = build(&state, &caller, tenant, q.range, None).await?;
    Ok(InstancePage {
        layout: page.layout.with_notice(&headers),
        ..page
    })
}

/// The instance page; also shown again (with `alert`) after a refused action.
pub async fn build(
    state: &AppState,
    caller: &Caller,
    t: Tenant,
    range: Option<String>,
    alert: Option<String>,
) -> Result<InstancePage, WebError> {
    // Read just before `t` was loaded by every caller; close enough for the
    // stream's "already shown" check, which allows a second of slack.
    let seen = Utc::now().timestamp_millis() - 1000;
    let (range, _, seconds) = RANGES
        .iter()
        .copied()
        .find(|(r, _, _)| Some(*r) == range.as_deref())
        .unwrap_or(RANGES[0]);
    let mut setup = setup_info(state, &t);
    add_claim_link(state, caller, &t, &mut setup).await?;
    let max_age = Duration::from_secs(state.usage.config().metrics_interval_secs.max(1));
    let current = state.usage.recent(&t, max_age).await;
    let to = Utc::now();
    let from = to - chrono::Duration::seconds(seconds);
    let step = ((seconds + MAX_POINTS - 1) / MAX_POINTS)
        .max(state.usage.config().metrics_interval_secs as i64);
    let points = usage::series(&state.pool, t.tenant_id(), from, to, step).await?;
    let cpu: Vec<_> = points
        .iter()
        .filter_map(|p| p.cpu_percent.map(|c| (p.at, c)))
        .collect();
    let memory: Vec<_> = points
        .iter()
        .map(|p| (p.at, p.memory_bytes as f64 / MIB))
        .collect();
    let memory_limit = points.last().map(|p| p.memory_limit_bytes as f64 / MIB);
    let charts = vec![
        chart::draw(
            Series {
                name: "cpu",
                title: "CPU",
                values: &cpu,
                format: |v| format!("{v:.1}%"),
                limit: None,
            },
            from,
            to,
        ),
        chart::draw(
            Series {
                name: "memory",
                title: "Memory",
                values: &memory,
                format: |mib| human_bytes(mib * MIB),
                limit: memory_limit,
            },
            from,
            to,
        ),
    ];
    let (deployments, _) =
        deployments::list(&state.pool, t.tenant_id(), &Default::default(), 20, 0).await?;
    let settings = t.settings();
    Ok(InstancePage {
        layout: Layout::member(t.subdomain.clone(), Section::Dashboard, caller),
        id: t.id.to_string(),
        url: state.config.tenants.tenant_url(&t.subdomain),
        badge: Badge::of(&t),
        live: t.status != crate::domain::TenantStatus::Destroyed,
        last_error: t.last_error.clone(),
        setup,
        current_cpu: current
            .as_ref()
            .map(|u| u.cpu_percent.map_or("–".into(), |c| format!("{c:.1}%"))),
        current_memory: current.as_ref().map(|u| {
            format!(
                "{} of {} ({:.0}%)",
                human_bytes(u.memory_bytes as f64),
                human_bytes(u.memory_limit_bytes as f64),
                u.memory_percent
            )
        }),
        range,
        ranges: RANGES,
        charts,
        resource_alert: t.resource_alert.as_ref().map(alert_text),
        deployments,
        alert,
        sandbox: settings.sandbox(),
        analytics_disabled: settings.analytics_disabled(&state.config.tenants),
        seen,
        subdomain: t.subdomain,
    })
}

/// The sampler's alert (`{resource, percentOfLimit, thresholdPercent}`) in words.
fn alert_text(alert: &serde_json::Value) -> String {
    let resource = match alert["resource"].as_str() {
        Some("memory") => "Memory",
        _ => "CPU",
    };
    let percent = alert["percentOfLimit"].as_f64().unwrap_or(0.0);
    let threshold = alert["thresholdPercent"].as_f64().unwrap_or(0.0);
    format!(
        "{resource} use has stayed above {threshold:.0}% of this instance's limit ({percent:.0}% when raised). \
         Fresco may slow down or restart; contact support if you need a higher limit."
    )
}
