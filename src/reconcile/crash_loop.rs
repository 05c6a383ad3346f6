//! Crash loops during start-up: a container that exits, and that Docker's restart
//! policy keeps restarting, would otherwise sit in `provisioning` until the
//! health timeout.
//! Restarts are counted from the first look at the container during the
//! tenant's current action, so restarts from earlier days do not count.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;

use crate::domain::TenantId;
use crate::provision::runtime::{ContainerInfo, LogRequest};
use crate::provision::TenantRuntime;

/// Lines of the container's output quoted in the error.
const QUOTED_LINES: u64 = 20;
/// Characters kept of each quoted line.
const LINE_CHARS: usize = 300;

/// The action (by its start time) and the restart count its first look saw.
type Baseline = (Option<DateTime<Utc>>, i64);

/// The restart count each tenant's container had when its current action was
/// first looked at.
#[derive(Default)]
pub struct Baselines {
    seen: Mutex<HashMap<TenantId, Baseline>>,
}

impl Baselines {
    /// Restarts since the action began (`action_started_at` tells actions apart).
    pub fn restarts_since_action(
        &self,
        tenant: TenantId,
        action_started_at: Option<DateTime<Utc>>,
        container: &ContainerInfo,
    ) -> i64 {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let entry = seen
            .entry(tenant)
            .or_insert((action_started_at, container.restart_count));
        // A new action, or a new container (its count starts again at 0).
        if entry.0 != action_started_at || container.restart_count < entry.1 {
            *entry = (action_started_at, container.restart_count);
        }
        container.restart_count - entry.1
    }

    pub fn forget(&self, tenant: TenantId) {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&tenant);
    }
}

/// The error a person reads: exit code, restarts, and the container's last
/// lines with credentials hidden.
pub async fn describe(
    runtime: &dyn TenantRuntime,
    tenant: TenantId,
    container: &ContainerInfo,
    restarts: i64,
) -> String {
    let request = LogRequest {
        stdout: true,
        stderr: true,
        tail: Some(QUOTED_LINES),
        ..Default::default()
    };
    let lines: Vec<String> = tokio::time::timeout(Duration::from_secs(5), async {
        let mut out = Vec::new();
        let mut stream = runtime.logs(tenant, request);
        while let Some(Ok(line)) = stream.next().await {
            out.push(scrub(&line.text).chars().take(LINE_CHARS).collect());
        }
        out
    })
    .await
    .unwrap_or_default();
    let code = container
        .exit_code
        .map_or_else(|| "unknown".to_owned(), |c| c.to_string());
    let mut message = format!(
        "container exited during start-up (exit code {code}; restarted {restarts} times by Docker); it was stopped"
    );
    if lines.is_empty() {
        message.push_str("; it wrote no output");
    } else {
        message.push_str(". Its last output:\n");
        message.push_str(&lines.join("\n"));
    }
    message
}

/// Hides credentials a start-up log may print: the password in a URL's
/// userinfo (`postgres://user:secret@host`) and the value of any
/// `…PASSWORD…=`/`…_URL=` assignment.
pub fn scrub(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for (i, word) in line.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&scrub_word(word));
    }
    out
}

fn scrub_word(word: &str) -> String {
    if let Some((key, _)) = word.split_once('=') {
        let upper = key.to_ascii_uppercase();
        if upper.contains("PASSWORD") || upper.ends_with("_URL") || upper.ends_with("_UNPOOLED") {
            return format!("{key}=***");
        }
    }
    let mut word = word.to_owned();
    let mut from = 0;
    while let Some(scheme) = word[from..].find("://").map(|i| from + i + 3) {
        let rest = &word[scheme..];
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        match rest[..end].rfind('@') {
            Some(at) => {
                let userinfo = &rest[..at];
                let user = userinfo.split(':').next().unwrap_or_default().to_owned();
                let masked = if userinfo.contains(':') {
                    format!("{user}:***")
                } else {
                    user
                };
                word.replace_range(scheme..scheme + at, &masked);
                from = scheme + masked.len() + 1;
            }
            None => from = scheme,
        }
    }
    word
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provision::{Health, RunState};

    fn container(restart_count: i64) -> ContainerInfo {
        ContainerInfo {
            id: "c".into(),
            state: RunState::Restarting,
            health: Health::Starting,
            started_at: None,
            spec_hash: None,
            exit_code: Some(1),
            restart_count,
            last_health_output: None,
            nano_cpus: 500_000_000,
        }
    }

    #[test]
    fn passwords_in_urls_and_assignments_are_hidden() {
        let line =
            "Error: connect postgres://tenant_user_ab:s3cr3t-Pw@10.0.0.1:5432/db?schema=x failed";
        let clean = scrub(line);
        assert!(!clean.contains("s3cr3t"), "{clean}");
        assert!(clean.contains("postgres://tenant_user_ab:***@10.0.0.1:5432/db?schema=x"));
        let env = scrub("DATABASE_URL=postgres://u:p@h/db DATABASE_URL_UNPOOLED=postgres://u:p@h/db PGPASSWORD=hunter2 ok");
        assert_eq!(
            env,
            "DATABASE_URL=*** DATABASE_URL_UNPOOLED=*** PGPASSWORD=*** ok"
        );
        assert_eq!(
            scrub("visit https://example.org/signin"),
            "visit https://example.org/signin"
        );
        assert_eq!(
            scrub("two a://x:1@h b://y:2@h"),
            "two a://x:***@h b://y:***@h"
        );
        assert_eq!(scrub("odd ://@ :// x://@"), "odd ://@ :// x://@");
    }

    #[test]
    fn restarts_count_from_the_first_look_at_an_action() {
        let baselines = Baselines::default();
        let tenant = TenantId::new();
        let started = Some(Utc::now());
        // Restarts from before this action do not count.
        assert_eq!(
            baselines.restarts_since_action(tenant, started, &container(7)),
            0
        );
        assert_eq!(
            baselines.restarts_since_action(tenant, started, &container(9)),
            2
        );
        // A new container starts counting again.
        assert_eq!(
            baselines.restarts_since_action(tenant, started, &container(1)),
            0
        );
        assert_eq!(
            baselines.restarts_since_action(tenant, started, &container(4)),
            3
        );
        // So does a new action.
        let later = Some(Utc::now() + chrono::Duration::seconds(1));
        assert_eq!(
            baselines.restarts_since_action(tenant, later, &container(4)),
            0
        );
    }
}
