//! `fresco-platform metrics`: a tenant's current resource use, as a person would
//! write it.

use serde_json::Value;

use super::api::resolve;
use super::failure::{out, Failure};
use super::MetricsArgs;

pub(super) async fn run(args: &MetricsArgs) -> Result<(), Failure> {
    let api = args.client.connect()?;
    let tenant = resolve(&api, &args.tenant).await?;
    let (text, body) = api.get(&tenant.path("/metrics"), &[]).await?;
    if api.json {
        return api.print_raw(&text);
    }
    let current = &body["current"];
    if current.is_null() {
        return out("no data (tenant not running)");
    }
    for line in metrics_lines(current) {
        out(&line)?;
    }
    Ok(())
}

fn metrics_lines(c: &Value) -> Vec<String> {
    let bytes = |k: &str| c[k].as_f64().map(format_bytes);
    let unknown = || "-".to_owned();
    let mut memory = bytes("memoryBytes").unwrap_or_else(unknown);
    if let Some(limit) = c["memoryLimitBytes"].as_f64().filter(|l| *l > 0.0) {
        memory.push_str(&format!(" of {}", format_bytes(limit)));
    }
    if let Some(pct) = c["memoryPercent"].as_f64() {
        memory.push_str(&format!(" ({pct:.1} %)"));
    }
    let pair = |a: &str, ka: &str, b: &str, kb: &str| {
        format!(
            "{a} {}, {b} {}",
            bytes(ka).unwrap_or_else(unknown),
            bytes(kb).unwrap_or_else(unknown)
        )
    };
    // Null until the sampler has two samples to compare.
    let mut cpu = c["cpuPercent"]
        .as_f64()
        .map(|p| format!("{p:.1} %"))
        .unwrap_or_else(|| "not measured yet".to_owned());
    if let Some(pct) = c["cpuOfLimitPercent"].as_f64() {
        cpu.push_str(&format!(" ({pct:.1} % of its limit)"));
    }
    let rows = [
        ("cpu", cpu),
        ("memory", memory),
        (
            "network",
            pair("received", "networkRxBytes", "sent", "networkTxBytes"),
        ),
        (
            "disk",
            pair("read", "blockReadBytes", "written", "blockWriteBytes"),
        ),
        (
            "processes",
            c["pids"]
                .as_u64()
                .map(|n| n.to_string())
                .unwrap_or_else(unknown),
        ),
        (
            "sampled at",
            c["sampledAt"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(unknown),
        ),
    ];
    rows.into_iter()
        .map(|(label, value)| format!("{label:<12}{value}"))
        .collect()
}

fn format_bytes(n: f64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024.0 {
        return format!("{n:.0} B");
    }
    let mut value = n;
    let mut unit = "B";
    for u in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = u;
    }
    format!("{value:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn metrics_read_like_a_person_would_write_them() {
        let lines = metrics_lines(&json!({
            "cpuPercent": 3.25, "cpuOfLimitPercent": 6.5, "memoryBytes": 47_185_920u64, "memoryLimitBytes": 536_870_912u64,
            "memoryPercent": 8.79, "networkRxBytes": 1536, "networkTxBytes": 10,
            "blockReadBytes": 0, "blockWriteBytes": 4096, "pids": 7,
            "sampledAt": "2026-01-01T00:00:00Z"
        }));
        assert_eq!(lines[0], "cpu         3.2 % (6.5 % of its limit)");
        assert_eq!(lines[1], "memory      45.0 MiB of 512.0 MiB (8.8 %)");
        assert_eq!(lines[2], "network     received 1.5 KiB, sent 10 B");
        assert_eq!(lines[3], "disk        read 0 B, written 4.0 KiB");
        assert_eq!(lines[4], "processes   7");
    }
}
