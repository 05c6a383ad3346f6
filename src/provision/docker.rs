//! `TenantRuntime` on a real Docker engine through bollard. All Docker details
//! live here.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bollard::container::LogOutput;
use bollard::models::{
    ContainerCreateBody, ContainerStateStatusEnum, ContainerUpdateBody, EndpointSettings,
    HealthConfig, HealthStatusEnum, HostConfig, HostConfigLogConfig, NetworkCreateRequest,
    NetworkingConfig, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, EventsOptionsBuilder,
    InspectContainerOptions, InspectNetworkOptions, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder, RestartContainerOptionsBuilder, StartContainerOptions,
    StopContainerOptionsBuilder,
};
use bollard::query_parameters::{LogsOptions, StatsOptions};
use bollard::Docker;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::StreamExt;

use super::labels;
use super::runtime::{
    ContainerInfo, ContainerSpec, Health, LogLine, LogRequest, LogStream, ManagedContainer,
    RunState, RuntimeError, RuntimeEvent, StatsSample, TenantRuntime,
};
use crate::domain::TenantId;

#[derive(Clone)]
pub struct DockerRuntime {
    docker: Docker,
    instance: String,
    /// Set once the tenants network was found with inter-container traffic on, so
    /// the warning is given once per process, not at every look.
    icc_warned: Arc<AtomicBool>,
    /// The engine's CPU count, read once: it does not change while it runs.
    host_cpus: Arc<tokio::sync::OnceCell<u32>>,
}

/// Bridge option that turns inter-container traffic on a network off: tenants
/// cannot reach each other, while the host (Traefik, Postgres through the gateway)
/// still reaches every container.
pub const ICC_OPTION: &str = "com.docker.network.bridge.enable_icc";

/// Whether a bridge network with these options lets its containers talk to each
/// other (Docker's default when the option is absent).
pub fn icc_enabled(options: Option<&HashMap<String, String>>) -> bool {
    options
        .and_then(|o| o.get(ICC_OPTION))
        .is_none_or(|v| !v.eq_ignore_ascii_case("false"))
}

fn is_status(err: &bollard::errors::Error, code: u16) -> bool {
    matches!(err, bollard::errors::Error::DockerResponseServerError { status_code, .. } if *status_code == code)
}

impl DockerRuntime {
    /// Connects with the local defaults (`DOCKER_HOST` or the unix socket) and
    /// negotiates the API version: the engine may be older than bollard's default.
    pub async fn connect(instance: &str) -> Result<Self, RuntimeError> {
        let docker = Docker::connect_with_local_defaults()
            .map_err(|e| RuntimeError::docker("connect", e))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| RuntimeError::docker("connect", e))?;
        Ok(Self {
            docker,
            instance: instance.to_owned(),
            icc_warned: Arc::new(AtomicBool::new(false)),
            host_cpus: Arc::new(tokio::sync::OnceCell::new()),
        })
    }

    fn instance_filters(&self) -> HashMap<String, Vec<String>> {
        HashMap::from([(
            "label".to_owned(),
            vec![
                format!("{}=true", labels::MANAGED),
                format!("{}={}", labels::INSTANCE, self.instance),
            ],
        )])
    }
}

fn parse_time(s: Option<&str>) -> Option<DateTime<Utc>> {
    s.and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .filter(|t| t.timestamp() > 0)
}

#[async_trait::async_trait]
impl TenantRuntime for DockerRuntime {
    async fn ping(&self) -> Result<(), RuntimeError> {
        self.docker
            .ping()
            .await
            .map(|_| ())
            .map_err(|e| RuntimeError::docker("ping", e))
    }

    async fn ensure_network(&self, name: &str) -> Result<Option<String>, RuntimeError> {
        let network = match self
            .docker
            .inspect_network(name, None::<InspectNetworkOptions>)
            .await
        {
            Ok(n) => n,
            Err(e) if is_status(&e, 404) => {
                let request = NetworkCreateRequest {
                    name: name.to_owned(),
                    driver: Some("bridge".to_owned()),
                    options: Some(HashMap::from([(ICC_OPTION.to_owned(), "false".to_owned())])),
                    ..Default::default()
                };
                match self.docker.create_network(request).await {
                    Ok(_) => {}
                    // Lost a race with another creator: fine.
                    Err(e) if is_status(&e, 409) => {}
                    Err(e) => return Err(RuntimeError::docker("network create", e)),
                }
                self.docker
                    .inspect_network(name, None::<InspectNetworkOptions>)
                    .await
                    .map_err(|e| RuntimeError::docker("network inspect", e))?
            }
            Err(e) => return Err(RuntimeError::docker("network inspect", e)),
        };
        if network.driver.as_deref() == Some("bridge")
            && icc_enabled(network.options.as_ref())
            && !self.icc_warned.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                network = name,
                "tenants network {name} lets containers reach each other (created without \
                 {ICC_OPTION}=false): any tenant can open connections to every other \
                 tenant's container. Recreate it with inter-container traffic off (remove it \
                 once no container is attached; the platform or scripts/dev creates it again)"
            );
        }
        let gateway = network
            .ipam
            .and_then(|ipam| ipam.config)
            .and_then(|configs| configs.into_iter().find_map(|c| c.gateway));
        Ok(gateway)
    }

    async fn ensure_image(&self, image: &str) -> Result<(), RuntimeError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => return Ok(()),
            Err(e) if is_status(&e, 404) => {}
            Err(e) => return Err(RuntimeError::docker("image inspect", e)),
        }
        let options = CreateImageOptionsBuilder::new().from_image(image).build();
        let mut pull = self.docker.create_image(Some(options), None, None);
        while let Some(progress) = pull.next().await {
            match progress {
                Ok(info) => {
                    if let Some(error) = info.error_detail.and_then(|d| d.message).or(info.error) {
                        return Err(RuntimeError::ImageUnavailable {
                            image: image.to_owned(),
                            reason: error,
                        });
                    }
                }
                Err(e) => {
                    return Err(RuntimeError::ImageUnavailable {
                        image: image.to_owned(),
                        reason: e.to_string(),
                    })
                }
            }
        }
        // A pull can end without error and still leave nothing behind.
        self.docker
            .inspect_image(image)
            .await
            .map(|_| ())
            .map_err(|e| RuntimeError::ImageUnavailable {
                image: image.to_owned(),
                reason: format!("pull finished but the image is missing ({e})"),
            })
    }

    async fn image_labels(
        &self,
        image: &str,
    ) -> Result<Option<BTreeMap<String, String>>, RuntimeError> {
        match self.docker.inspect_image(image).await {
            Ok(found) => Ok(Some(
                found
                    .config
                    .and_then(|c| c.labels)
                    .map(|l| l.into_iter().collect())
                    .unwrap_or_default(),
            )),
            Err(e) if is_status(&e, 404) => Ok(None),
            Err(e) => Err(RuntimeError::docker("image inspect", e)),
        }
    }

    async fn inspect(&self, tenant: TenantId) -> Result<Option<ContainerInfo>, RuntimeError> {
        let c = match self
            .docker
            .inspect_container(&tenant.container_name(), None::<InspectContainerOptions>)
            .await
        {
            Ok(c) => c,
            Err(e) if is_status(&e, 404) => return Ok(None),
            Err(e) => return Err(RuntimeError::docker("container inspect", e)),
        };
        let state = c.state.unwrap_or_default();
        let run_state = match state.status {
            Some(ContainerStateStatusEnum::CREATED) => RunState::Created,
            Some(ContainerStateStatusEnum::RUNNING) => RunState::Running,
            Some(ContainerStateStatusEnum::RESTARTING) => RunState::Restarting,
            Some(ContainerStateStatusEnum::PAUSED) => RunState::Paused,
            Some(ContainerStateStatusEnum::EXITED) => RunState::Exited,
            Some(ContainerStateStatusEnum::DEAD) => RunState::Dead,
            _ => RunState::Other,
        };
        let (health, last_health_output) = match state.health {
            None => (Health::None, None),
            Some(h) => {
                let status = match h.status {
                    Some(HealthStatusEnum::STARTING) => Health::Starting,
                    Some(HealthStatusEnum::HEALTHY) => Health::Healthy,
                    Some(HealthStatusEnum::UNHEALTHY) => Health::Unhealthy,
                    _ => Health::None,
                };
                let output = h
                    .log
                    .and_then(|log| log.into_iter().last())
                    .and_then(|r| r.output);
                (status, output.map(|o| o.trim().chars().take(300).collect()))
            }
        };
        let spec_hash = c
            .config
            .and_then(|cfg| cfg.labels)
            .and_then(|mut l| l.remove(labels::SPEC_HASH));
        Ok(Some(ContainerInfo {
            id: c.id.unwrap_or_default(),
            state: run_state,
            health,
            started_at: parse_time(state.started_at.as_deref()),
            spec_hash,
            exit_code: state.exit_code,
            restart_count: c.restart_count.unwrap_or(0),
            last_health_output,
            nano_cpus: c.host_config.and_then(|h| h.nano_cpus).unwrap_or(0),
        }))
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let secs = |s: u64| (s as i64).saturating_mul(1_000_000_000);
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            user: spec.user.clone(),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(spec.labels.clone().into_iter().collect()),
            exposed_ports: Some(HashMap::from([(
                format!("{}/tcp", labels::FRESCO_PORT),
                HashMap::new(),
            )])),
            stop_signal: Some("SIGTERM".to_owned()),
            stop_timeout: Some(spec.stop_timeout_secs),
            healthcheck: Some(HealthConfig {
                test: Some(spec.healthcheck.clone()),
                interval: Some(secs(spec.health_interval_secs)),
                timeout: Some(secs(spec.health_timeout_secs)),
                retries: Some(spec.health_retries as i64),
                start_period: Some(secs(spec.health_start_period_secs)),
                start_interval: None,
            }),
            host_config: Some(HostConfig {
                memory: Some(spec.memory_bytes),
                memory_swap: Some(spec.memory_swap_bytes),
                nano_cpus: Some(spec.nano_cpus),
                pids_limit: Some(spec.pids_limit),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                network_mode: Some(spec.network.clone()),
                cap_drop: Some(spec.cap_drop.clone()),
                security_opt: Some(spec.security_opt.clone()),
                log_config: Some(HostConfigLogConfig {
                    typ: Some(spec.log_driver.clone()),
                    config: Some(spec.log_options.clone().into_iter().collect()),
                }),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    spec.network.clone(),
                    EndpointSettings::default(),
                )])),
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::new()
            .name(&spec.name)
            .build();
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| RuntimeError::docker("container create", e))?;
        Ok(created.id)
    }

    async fn start(&self, tenant: TenantId) -> Result<(), RuntimeError> {
        match self
            .docker
            .start_container(&tenant.container_name(), None::<StartContainerOptions>)
            .await
        {
            // 304: already running.
            Err(e) if !is_status(&e, 304) => Err(RuntimeError::docker("container start", e)),
            _ => Ok(()),
        }
    }

    async fn stop(&self, tenant: TenantId, timeout_secs: i64) -> Result<(), RuntimeError> {
        let options = StopContainerOptionsBuilder::new()
            .t(timeout_secs as i32)
            .build();
        match self
            .docker
            .stop_container(&tenant.container_name(), Some(options))
            .await
        {
            // 304: already stopped; 404: nothing to stop.
            Err(e) if !is_status(&e, 304) && !is_status(&e, 404) => {
                Err(RuntimeError::docker("container stop", e))
            }
            _ => Ok(()),
        }
    }

    async fn restart(&self, tenant: TenantId, timeout_secs: i64) -> Result<(), RuntimeError> {
        let options = RestartContainerOptionsBuilder::new()
            .t(timeout_secs as i32)
            .build();
        self.docker
            .restart_container(&tenant.container_name(), Some(options))
            .await
            .map_err(|e| RuntimeError::docker("container restart", e))
    }

    async fn set_cpus(&self, tenant: TenantId, nano_cpus: i64) -> Result<(), RuntimeError> {
        let body = ContainerUpdateBody {
            nano_cpus: Some(nano_cpus),
            ..Default::default()
        };
        self.docker
            .update_container(&tenant.container_name(), body)
            .await
            .map_err(|e| RuntimeError::docker("container update", e))
    }

    async fn host_cpus(&self) -> Result<u32, RuntimeError> {
        self.host_cpus
            .get_or_try_init(|| async {
                let info = self
                    .docker
                    .info()
                    .await
                    .map_err(|e| RuntimeError::docker("info", e))?;
                Ok(info.ncpu.unwrap_or(1).clamp(1, u32::MAX as i64) as u32)
            })
            .await
            .copied()
    }

    async fn remove(&self, tenant: TenantId) -> Result<(), RuntimeError> {
        self.remove_by_id(&tenant.container_name()).await
    }

    async fn remove_by_id(&self, id: &str) -> Result<(), RuntimeError> {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(options)).await {
            // 404: already gone; 409: removal already in progress.
            Err(e) if !is_status(&e, 404) && !is_status(&e, 409) => {
                Err(RuntimeError::docker("container remove", e))
            }
            _ => Ok(()),
        }
    }

    async fn list_managed(&self) -> Result<Vec<ManagedContainer>, RuntimeError> {
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&self.instance_filters())
            .build();
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| RuntimeError::docker("container list", e))?;
        Ok(containers
            .into_iter()
            .map(|c| ManagedContainer {
                id: c.id.unwrap_or_default(),
                tenant: c
                    .labels
                    .and_then(|l| l.get(labels::TENANT_ID).and_then(|t| t.parse().ok())),
            })
            .collect())
    }

    fn logs(
        &self,
        tenant: TenantId,
        request: LogRequest,
    ) -> BoxStream<'static, Result<LogLine, RuntimeError>> {
        // Docker's since/until are whole seconds; finer bounds are the caller's to apply.
        let options = LogsOptions {
            follow: request.follow,
            stdout: request.stdout,
            stderr: request.stderr,
            since: request.since.map(|t| t.timestamp() as i32).unwrap_or(0),
            until: request.until.map(|t| t.timestamp() as i32 + 1).unwrap_or(0),
            timestamps: true,
            tail: request
                .tail
                .map(|n| n.to_string())
                .unwrap_or_else(|| "all".to_owned()),
        };
        self.docker
            .logs(&tenant.container_name(), Some(options))
            .filter_map(|frame| async move {
                let (stream, bytes) = match frame {
                    Ok(LogOutput::StdOut { message }) => (LogStream::Stdout, message),
                    Ok(LogOutput::StdErr { message }) => (LogStream::Stderr, message),
                    Ok(_) => return None,
                    Err(e) if is_status(&e, 404) => return None,
                    Err(e) => return Some(Err(RuntimeError::docker("logs", e))),
                };
                let raw = String::from_utf8_lossy(&bytes);
                let raw = raw.strip_suffix('\n').unwrap_or(&raw);
                let (stamp, text) = raw.split_once(' ').unwrap_or((raw, ""));
                let timestamp = DateTime::parse_from_rfc3339(stamp)
                    .ok()?
                    .with_timezone(&Utc);
                Some(Ok(LogLine {
                    timestamp,
                    stream,
                    text: text.strip_suffix('\r').unwrap_or(text).to_owned(),
                }))
            })
            .boxed()
    }

    async fn stats(&self, tenant: TenantId) -> Result<Option<StatsSample>, RuntimeError> {
        let options = StatsOptions {
            stream: false,
            one_shot: true,
        };
        let mut stream = self.docker.stats(&tenant.container_name(), Some(options));
        let s = match stream.next().await {
            None => return Ok(None),
            Some(Err(e)) if is_status(&e, 404) || is_status(&e, 409) => return Ok(None),
            Some(Err(e)) => return Err(RuntimeError::docker("stats", e)),
            Some(Ok(s)) => s,
        };
        let cpu = s.cpu_stats.unwrap_or_default();
        let memory = s.memory_stats.unwrap_or_default();
        // As `docker stats`: page cache is not the container's own use.
        let cache = memory
            .stats
            .as_ref()
            .and_then(|m| {
                m.get("total_inactive_file")
                    .or(m.get("inactive_file"))
                    .or(m.get("cache"))
                    .copied()
            })
            .unwrap_or(0);
        let (rx, tx) = s
            .networks
            .unwrap_or_default()
            .values()
            .fold((0, 0), |(rx, tx), n| {
                (rx + n.rx_bytes.unwrap_or(0), tx + n.tx_bytes.unwrap_or(0))
            });
        let (read, write) = s
            .blkio_stats
            .and_then(|b| b.io_service_bytes_recursive)
            .unwrap_or_default()
            .iter()
            .fold((0, 0), |(r, w), e| {
                match e.op.as_deref().map(str::to_ascii_lowercase).as_deref() {
                    Some("read") => (r + e.value.unwrap_or(0), w),
                    Some("write") => (r, w + e.value.unwrap_or(0)),
                    _ => (r, w),
                }
            });
        if memory.limit.is_none() && cpu.cpu_usage.is_none() {
            // A stopped container answers with an empty sample.
            return Ok(None);
        }
        Ok(Some(StatsSample {
            at: Utc::now(),
            cpu_total_ns: cpu.cpu_usage.and_then(|u| u.total_usage).unwrap_or(0),
            system_cpu_ns: cpu.system_cpu_usage.unwrap_or(0),
            online_cpus: cpu.online_cpus.unwrap_or(1),
            memory_bytes: memory.usage.unwrap_or(0).saturating_sub(cache),
            memory_limit_bytes: memory.limit.unwrap_or(0),
            network_rx_bytes: rx,
            network_tx_bytes: tx,
            block_read_bytes: read,
            block_write_bytes: write,
            pids: s.pids_stats.and_then(|p| p.current).unwrap_or(0),
        }))
    }

    fn events(&self) -> BoxStream<'static, Result<RuntimeEvent, RuntimeError>> {
        let mut filters = self.instance_filters();
        filters.insert("type".to_owned(), vec!["container".to_owned()]);
        let options = EventsOptionsBuilder::new().filters(&filters).build();
        self.docker
            .events(Some(options))
            .filter_map(|event| async move {
                match event {
                    Err(e) => Some(Err(RuntimeError::docker("events", e))),
                    Ok(message) => {
                        let actor = message.actor?;
                        let tenant = actor.attributes?.get(labels::TENANT_ID)?.parse().ok()?;
                        Some(Ok(RuntimeEvent {
                            tenant,
                            action: message.action.unwrap_or_default(),
                        }))
                    }
                }
            })
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inter_container_traffic_is_on_unless_the_bridge_option_turns_it_off() {
        let with = |v: &str| HashMap::from([(ICC_OPTION.to_owned(), v.to_owned())]);
        assert!(icc_enabled(None));
        assert!(icc_enabled(Some(&HashMap::new())));
        assert!(icc_enabled(Some(&with("true"))));
        assert!(!icc_enabled(Some(&with("false"))));
    }
}
