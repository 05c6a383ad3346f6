//! What a tenant container runs with, read where it takes effect: the HostConfig
//! Docker created it from, and the kernel's view of its main process.

use bollard::models::ContainerInspectResponse;

/// The kernel's status of the container's main process (`/proc/<pid>/status`;
/// the tests run on the engine's host).
pub struct ProcessStatus {
    pub uid: u32,
    pub cap_eff: u64,
    pub no_new_privs: bool,
}

pub fn process_status(c: &ContainerInspectResponse) -> ProcessStatus {
    let pid = c
        .state
        .as_ref()
        .and_then(|s| s.pid)
        .filter(|p| *p > 0)
        .expect("the container runs");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    };
    ProcessStatus {
        uid: field("Uid:").parse().unwrap(),
        cap_eff: u64::from_str_radix(&field("CapEff:"), 16).unwrap(),
        no_new_privs: field("NoNewPrivs:") == "1",
    }
}

/// The container was created with every capability dropped, no-new-privileges and
/// rotated json-file logs, and its process runs that way, as a user other than root.
pub fn assert_hardened(c: &ContainerInspectResponse, max_size: &str, max_files: &str) {
    let host = c.host_config.clone().expect("host config");
    assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
    assert_eq!(
        host.security_opt,
        Some(vec!["no-new-privileges".to_owned()])
    );
    let log = host.log_config.expect("log config");
    assert_eq!(log.typ.as_deref(), Some("json-file"));
    let options = log.config.unwrap_or_default();
    assert_eq!(
        options.get("max-size").map(String::as_str),
        Some(max_size),
        "{options:?}"
    );
    assert_eq!(
        options.get("max-file").map(String::as_str),
        Some(max_files),
        "{options:?}"
    );
    let process = process_status(c);
    assert_ne!(process.uid, 0, "the tenant's process runs as root");
    assert_eq!(process.cap_eff, 0, "effective capabilities left");
    assert!(process.no_new_privs, "no_new_privs is not set");
}

/// The container's address on `network`.
pub fn container_ip(c: &ContainerInspectResponse, network: &str) -> String {
    c.network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .and_then(|n| n.get(network))
        .and_then(|e| e.ip_address.clone())
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| panic!("container has no address on {network}"))
}

/// GET a stand-in route on a container directly (from the host, which reaches every
/// bridge); returns the status and the JSON body.
pub async fn stand_in_get(ip: &str, path_and_query: &str) -> (u16, serde_json::Value) {
    let response = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap()
        .get(format!("http://{ip}:3000{path_and_query}"))
        .send()
        .await
        .expect("the stand-in answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}
