//! The `fresco-platform` client commands (`logs`, `tenants`), run as the real binary
//! against a real platform: what they print, where, and the exit codes scripts rely on.

mod common;

use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{random, subdomain, wait_traefik, Options, Platform};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

const ROUTE_TIMEOUT: Duration = Duration::from_secs(20);
/// How soon a line the container writes must reach a following `logs -f`.
const LINE_TIMEOUT: Duration = Duration::from_secs(5);

/// The binary, pointed at `p` with its admin key; a home without a config file so a
/// developer's own `~/.config/fresco-platform/cli.conf` cannot interfere.
fn cli(p: &Platform) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fresco-platform"));
    cmd.env("FRESCO_PLATFORM_URL", &p.base)
        .env("FRESCO_API_KEY", &p.key)
        .env_remove("FRESCO_CLI_CONFIG")
        .env(
            "HOME",
            std::env::temp_dir().join(format!("fp-cli-home-{}", random(8))),
        )
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

async fn run(mut cmd: Command, args: &[&str]) -> Output {
    tokio::time::timeout(Duration::from_secs(30), cmd.args(args).output())
        .await
        .unwrap_or_else(|_| panic!("`{}` did not finish in 30 s", args.join(" ")))
        .expect("run fresco-platform")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Collects a child's output lines as they arrive.
fn collect(from: impl AsyncRead + Unpin + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    tokio::spawn(async move {
        let mut reader = BufReader::new(from).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

fn seen(lines: &Mutex<Vec<String>>, marker: &str) -> bool {
    lines.lock().unwrap().iter().any(|l| l.contains(marker))
}

/// Makes the tenant's container write `text` as one line to `stream`, through Traefik.
async fn echo(sub: &str, stream: &str, text: &str) {
    let port = common::env("TRAEFIK_HTTP_PORT");
    let host = format!("{sub}.{}", common::env("BASE_DOMAIN"));
    let resp = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/stand-in/echo"))
        .query(&[("stream", stream), ("text", text)])
        .header("Host", host)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("echo through Traefik");
    assert_eq!(resp.status(), 200, "stand-in echo: {:?}", resp.text().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_logs_follow_prints_container_lines_and_exits_cleanly() {
    let p = Platform::start(Options::default()).await;
    let sub = subdomain("clilogs");
    p.create_active(&sub).await;
    wait_traefik(&sub, "/signin", 200, ROUTE_TIMEOUT).await;

    let mut child = cli(&p)
        .args(["logs", &sub, "-f"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn logs -f");
    let stdout = collect(child.stdout.take().expect("piped stdout"));
    let stderr = collect(child.stderr.take().expect("piped stderr"));

    let out_marker = format!("cli-marker-{}", random(12));
    let err_marker = format!("cli-marker-err-{}", random(12));
    // The stream may not be open yet when the first lines are written: write them
    // again each second until they show up (a repeated line is harmless here).
    let deadline = Instant::now() + LINE_TIMEOUT;
    let mut next_echo = Instant::now();
    while !(seen(&stdout, &out_marker) && seen(&stderr, &err_marker)) {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "logs -f exited early with {status}; stderr: {:?}",
                stderr.lock().unwrap()
            );
        }
        assert!(
            Instant::now() < deadline,
            "markers not seen within {LINE_TIMEOUT:?}; stdout: {:?}; stderr: {:?}",
            stdout.lock().unwrap(),
            stderr.lock().unwrap()
        );
        if Instant::now() >= next_echo {
            echo(&sub, "stdout", &out_marker).await;
            echo(&sub, "stderr", &err_marker).await;
            next_echo = Instant::now() + Duration::from_secs(1);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The container's two streams stay apart, like `docker logs`.
    assert!(!seen(&stdout, &err_marker), "stderr line on stdout");
    assert!(!seen(&stderr, &out_marker), "stdout line on stderr");

    let pid = child.id().expect("logs -f is running");
    let kill = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(kill.success());
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("logs -f did not exit within 5 s of Ctrl-C")
        .expect("wait for logs -f");
    assert_eq!(
        status.code(),
        Some(0),
        "Ctrl-C is a normal end; stderr: {:?}",
        stderr.lock().unwrap()
    );
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_exit_codes_distinguish_usage_and_api_errors() {
    let p = Platform::start(Options::default()).await;
    let sub = subdomain("cliexit");
    let (status, body) = p.create_tenant(&sub).await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().expect("tenant id").to_owned();

    // A subdomain nobody has: the API found nothing, so 1, with a message.
    let out = run(cli(&p), &["tenants", "get", "no-such-tenant"]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        text(&out.stderr).contains("no tenant with subdomain no-such-tenant"),
        "{out:?}"
    );
    // An id nobody has: the API's own 404, with its request id.
    let missing = uuid::Uuid::new_v4().to_string();
    let out = run(cli(&p), &["tenants", "get", &missing]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("not_found") && stderr.contains("request id"),
        "{stderr}"
    );

    // Destroy without --confirm is refused before anything is sent: 2, and the
    // tenant is still there.
    let out = run(cli(&p), &["tenants", "destroy", &sub]).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("--confirm"), "{out:?}");
    let t = p.tenant(&id).await;
    assert_ne!(t["desiredState"], "destroyed", "{t}");
    assert_ne!(t["currentAction"], "destroy", "{t}");

    // An unknown flag: clap's usage error, 2.
    let out = run(cli(&p), &["tenants", "list", "--no-such-flag"]).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    // No key anywhere: a usage error, 2, before any request.
    let mut keyless = cli(&p);
    keyless.env_remove("FRESCO_API_KEY");
    let out = run(keyless, &["tenants", "list"]).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("FRESCO_API_KEY"), "{out:?}");

    // A wrong key: the API says unauthorized, 1, and the key is never echoed.
    let wrong_key = format!("fp_wrong{}", random(24));
    let mut wrong = cli(&p);
    wrong.env("FRESCO_API_KEY", &wrong_key);
    let out = run(wrong, &["tenants", "list"]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("unauthorized"), "{stderr}");
    assert!(
        !stderr.contains(&wrong_key) && !text(&out.stdout).contains(&wrong_key),
        "the key was printed"
    );

    // --json: the API's answer, parseable, listing the tenant.
    let out = run(cli(&p), &["tenants", "list", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let listed: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("tenants list --json prints JSON");
    let subs: Vec<&str> = listed["data"]
        .as_array()
        .expect("data list")
        .iter()
        .filter_map(|t| t["subdomain"].as_str())
        .collect();
    assert!(subs.contains(&sub.as_str()), "{listed}");

    // And the human table names it too.
    let out = run(cli(&p), &["tenants", "list", "--search", &sub]).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let table = text(&out.stdout);
    assert!(
        table.starts_with("ID") && table.contains(&sub) && table.contains(&id),
        "{table}"
    );
    p.cleanup().await;
}
