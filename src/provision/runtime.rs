//! The container runtime seam: one method per operation the reconciler needs, so
//! it reads as intent. `docker.rs` implements it with bollard.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use futures::stream::BoxStream;

use crate::domain::TenantId;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("image {image} is not available and could not be pulled: {reason}")]
    ImageUnavailable { image: String, reason: String },
    #[error("docker {operation} failed: {message}")]
    Docker {
        operation: &'static str,
        message: String,
    },
}

impl RuntimeError {
    pub fn docker(operation: &'static str, err: impl fmt::Display) -> Self {
        Self::Docker {
            operation,
            message: err.to_string(),
        }
    }
}

/// Everything a tenant container is created from. `Debug` leaves out env values:
/// they carry the tenant's database password.
#[derive(Clone)]
pub struct ContainerSpec {
    pub tenant: TenantId,
    pub name: String,
    pub image: String,
    pub env: Vec<(String, String)>,
    pub labels: BTreeMap<String, String>,
    pub memory_bytes: i64,
    pub memory_swap_bytes: i64,
    pub nano_cpus: i64,
    pub pids_limit: i64,
    pub stop_timeout_secs: i64,
    pub healthcheck: Vec<String>,
    pub health_interval_secs: u64,
    pub health_start_period_secs: u64,
    pub health_retries: u32,
    pub health_timeout_secs: u64,
    pub network: String,
    /// `uid[:gid]` or a user name; `None` runs the image's own user.
    pub user: Option<String>,
    /// Linux capabilities dropped (`ALL`: Fresco needs none, it serves on port 3000).
    pub cap_drop: Vec<String>,
    /// `no-new-privileges`: no setuid binary can raise a process's privileges.
    pub security_opt: Vec<String>,
    /// Docker log driver and its options (json-file with rotation).
    pub log_driver: String,
    pub log_options: BTreeMap<String, String>,
}

impl fmt::Debug for ContainerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContainerSpec")
            .field("name", &self.name)
            .field("image", &self.image)
            .field(
                "env",
                &self.env.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            )
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Created,
    Running,
    Restarting,
    Paused,
    Exited,
    Dead,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// The container has no health check.
    None,
    Starting,
    Healthy,
    Unhealthy,
}

#[derive(Debug, Clone)]
pub struct ContainerInfo {
    pub id: String,
    pub state: RunState,
    pub health: Health,
    pub started_at: Option<DateTime<Utc>>,
    pub spec_hash: Option<String>,
    pub exit_code: Option<i64>,
    /// How often Docker's restart policy has restarted this container.
    pub restart_count: i64,
    /// Output of the most recent failed health check, for error messages.
    pub last_health_output: Option<String>,
    /// The CPU allocation it has now (Docker's NanoCpus; 0 when none is set).
    pub nano_cpus: i64,
}

/// A managed container as listed, for orphan collection.
#[derive(Debug, Clone)]
pub struct ManagedContainer {
    pub id: String,
    pub tenant: Option<TenantId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// One line a container wrote, as it wrote it.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub timestamp: DateTime<Utc>,
    pub stream: LogStream,
    pub text: String,
}

#[derive(Debug, Clone, Default)]
pub struct LogRequest {
    pub follow: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Only the last N lines.
    pub tail: Option<u64>,
}

/// Raw resource counters of a container at one moment (cumulative where Docker
/// counts cumulatively: CPU time, network and block bytes).
#[derive(Debug, Clone, Default)]
pub struct StatsSample {
    pub at: DateTime<Utc>,
    pub cpu_total_ns: u64,
    pub system_cpu_ns: u64,
    pub online_cpus: u32,
    pub memory_bytes: u64,
    pub memory_limit_bytes: u64,
    pub network_rx_bytes: u64,
    pub network_tx_bytes: u64,
    pub block_read_bytes: u64,
    pub block_write_bytes: u64,
    pub pids: u64,
}

/// Something happened to a managed container.
#[derive(Debug, Clone)]
pub struct RuntimeEvent {
    pub tenant: TenantId,
    pub action: String,
}

/// The keys among an image's labels that Traefik would read (`traefik.*`,
/// in any case): an image carrying them could route itself.
pub fn routing_labels<'a>(
    labels: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Vec<String> {
    labels
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.to_ascii_lowercase().starts_with("traefik."))
        .cloned()
        .collect()
}

#[async_trait::async_trait]
pub trait TenantRuntime: Send + Sync + 'static {
    /// The engine answers.
    async fn ping(&self) -> Result<(), RuntimeError>;
    /// Creates the tenants network if missing; returns its gateway address.
    async fn ensure_network(&self, name: &str) -> Result<Option<String>, RuntimeError>;
    /// Makes sure the image is present locally, pulling it if not.
    async fn ensure_image(&self, image: &str) -> Result<(), RuntimeError>;
    /// The labels of a local image (`None` when it is not present locally).
    async fn image_labels(
        &self,
        image: &str,
    ) -> Result<Option<BTreeMap<String, String>>, RuntimeError>;
    async fn inspect(&self, tenant: TenantId) -> Result<Option<ContainerInfo>, RuntimeError>;
    /// Creates the container (not started) and returns its id.
    async fn create(&self, spec: &ContainerSpec) -> Result<String, RuntimeError>;
    async fn start(&self, tenant: TenantId) -> Result<(), RuntimeError>;
    async fn stop(&self, tenant: TenantId, timeout_secs: i64) -> Result<(), RuntimeError>;
    async fn restart(&self, tenant: TenantId, timeout_secs: i64) -> Result<(), RuntimeError>;
    /// Changes the container's CPU allocation (NanoCpus) in place, running or
    /// not: no recreate, no restart.
    async fn set_cpus(&self, tenant: TenantId, nano_cpus: i64) -> Result<(), RuntimeError>;
    /// How many CPUs the engine's host has: no container can be given more.
    async fn host_cpus(&self) -> Result<u32, RuntimeError>;
    /// Removes the container if it exists (killing it if running).
    async fn remove(&self, tenant: TenantId) -> Result<(), RuntimeError>;
    async fn remove_by_id(&self, id: &str) -> Result<(), RuntimeError>;
    /// Managed containers of this platform instance, running or not.
    async fn list_managed(&self) -> Result<Vec<ManagedContainer>, RuntimeError>;
    /// The container's output. Following ends when the container stops (or the
    /// engine connection breaks); dropping the stream closes the engine request.
    fn logs(
        &self,
        tenant: TenantId,
        request: LogRequest,
    ) -> BoxStream<'static, Result<LogLine, RuntimeError>>;
    /// Current resource counters; None when the container is not running.
    async fn stats(&self, tenant: TenantId) -> Result<Option<StatsSample>, RuntimeError>;
    /// Lifecycle events of this instance's managed containers; ends when the
    /// engine connection breaks.
    fn events(&self) -> BoxStream<'static, Result<RuntimeEvent, RuntimeError>>;
}
