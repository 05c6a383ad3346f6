//! The platform's own image (compose/Dockerfile) and the production compose file.
//!
//! The image is built from the debug binary `cargo test` already made, on the local
//! `debian:bookworm-slim` (scripts/build-debian-base), and the **containerized**
//! control plane runs against the local stack: the Docker socket mounted, the host's
//! network (Postgres on 127.0.0.1, Traefik reaching tenants through the bridge), the
//! environment `Platform` gives a platform, a fresh database. It must turn healthy
//! by its own HEALTHCHECK, run as non-root, and provision a tenant Traefik routes.
//!
//! The compose file is checked against the Compose Specification's schema
//! (compose/schema/, vendored) with check-jsonschema, and every file it names must
//! exist in the repository.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use clap::CommandFactory;
use reqwest::StatusCode;

use common::{random, subdomain, wait_traefik, Options, Platform};
use fresco_platform::cli::Cli;

const DOCKER_SOCKET: &str = "/var/run/docker.sock";
/// The image's HEALTHCHECK runs every 10 s: the first probe comes 10 s after start.
const HEALTHY_TIMEOUT: Duration = Duration::from_secs(90);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn docker(args: &[&str]) -> Command {
    let mut cmd = Command::new("docker");
    cmd.args(args).env("DOCKER_BUILDKIT", "0");
    cmd
}

/// A test image tag, removed when dropped.
struct Image(String);

impl Image {
    /// compose/Dockerfile over the debug binary, in a context of those two files.
    fn build() -> Self {
        run(Command::new("bash").arg(repo().join("scripts/build-debian-base")));
        let context = std::env::temp_dir().join(format!("fpt-image-{}", random(10)));
        std::fs::create_dir_all(&context).unwrap();
        std::fs::copy(
            repo().join("compose/Dockerfile"),
            context.join("Dockerfile"),
        )
        .unwrap();
        std::fs::copy(
            env!("CARGO_BIN_EXE_fresco-platform"),
            context.join("fresco-platform"),
        )
        .unwrap();
        let tag = format!("fresco-platform-test:{}", random(10));
        let built = docker(&[
            "build",
            "-q",
            "--build-arg",
            "BINARY=fresco-platform",
            "-t",
            &tag,
        ])
        .arg(&context)
        .stdin(Stdio::null())
        .output()
        .unwrap();
        let _ = std::fs::remove_dir_all(&context);
        assert!(
            built.status.success(),
            "docker build of compose/Dockerfile: {}",
            String::from_utf8_lossy(&built.stderr)
        );
        Self(tag)
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = docker(&["rmi", "-f", &self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The containerized control plane, force-removed when dropped.
struct Container(String);

impl Container {
    fn inspect(&self, format: &str) -> String {
        stdout(&run(&mut docker(&["inspect", "-f", format, &self.0])))
    }

    fn logs(&self) -> String {
        let out = docker(&["logs", "--tail", "40", &self.0]).output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Waits for Docker's own HEALTHCHECK verdict.
    async fn wait_healthy(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let state = self.inspect("{{.State.Status}} {{.State.Health.Status}}");
            match state.as_str() {
                "running healthy" => return,
                s if !s.starts_with("running") => {
                    panic!("the platform container is {s}:\n{}", self.logs())
                }
                s => assert!(
                    Instant::now() < deadline,
                    "the platform container is still {s} after {timeout:?}:\n{}",
                    self.logs()
                ),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// What `serve` reads from the environment: `Platform::args()` (its own database,
/// listen address, instance name), and every other `serve` setting the test's
/// environment (scripts/test, .local/stack.env) has, as a child `serve` would inherit.
fn serve_environment(p: &Platform) -> BTreeMap<String, String> {
    let cli = Cli::command();
    let serve = cli.find_subcommand("serve").expect("the serve command");
    let mut env: BTreeMap<String, String> = serve
        .get_arguments()
        .filter_map(|a| a.get_env())
        .filter_map(|name| {
            let name = name.to_str()?.to_owned();
            let value = std::env::var(&name).ok()?;
            Some((name, value))
        })
        .collect();
    env.extend(p.args());
    env
}

/// An env file only root reads (it holds the database password), removed after use.
fn env_file(env: &BTreeMap<String, String>) -> PathBuf {
    let path = std::env::temp_dir().join(format!("fpt-image-env-{}", random(10)));
    let mut file = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    for (k, v) in env {
        assert!(!v.contains('\n'), "{k} spans lines");
        writeln!(file, "{k}={v}").unwrap();
    }
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerized_platform_turns_healthy_runs_as_non_root_and_provisions_a_routed_tenant() {
    let started = Instant::now();
    let image = Image::build();
    let built_in = started.elapsed();
    let size: u64 = stdout(&run(&mut docker(&[
        "image",
        "inspect",
        "-f",
        "{{.Size}}",
        &image.0,
    ])))
    .parse()
    .unwrap();

    // Its own database with the admin in it, as for any platform under test; the
    // in-process server it starts is stopped, and the container serves in its place
    // (same listen address, so `p`'s API helpers reach the container).
    let mut p = Platform::start(Options::default()).await;
    p.kill_server().await;
    let env = serve_environment(&p);
    let env_path = env_file(&env);
    let socket_gid = std::fs::metadata(DOCKER_SOCKET).unwrap().gid().to_string();
    let container = Container(format!("fpt-platform-{}", random(10)));
    let run_started = Instant::now();
    let out = docker(&["run", "-d", "--name", &container.0, "--network", "host"])
        .args(["--group-add", &socket_gid])
        .args(["-v", &format!("{DOCKER_SOCKET}:{DOCKER_SOCKET}")])
        .arg("--env-file")
        .arg(&env_path)
        .arg(&image.0)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&env_path);
    assert!(
        out.status.success(),
        "docker run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    container.wait_healthy(HEALTHY_TIMEOUT).await;
    let healthy_in = run_started.elapsed();
    eprintln!(
        "platform image: {} MiB (debug binary), built in {:.1} s, healthy {:.1} s after `docker run`",
        size / 1024 / 1024,
        built_in.as_secs_f64(),
        healthy_in.as_secs_f64()
    );

    // Non-root: the image says so, and the kernel agrees about the running process.
    assert_eq!(container.inspect("{{.Config.User}}"), "65532:65532");
    let pid = container.inspect("{{.State.Pid}}");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .expect("Uid line");
    assert!(
        uid.split_whitespace().all(|u| u == "65532"),
        "serve runs as {uid}"
    );

    // The healthcheck command: 0 and "healthy" on the live server, 1 where nothing
    // answers, and nothing but a status word either way.
    let ok = docker(&["exec", &container.0, "fresco-platform", "healthcheck"])
        .output()
        .unwrap();
    assert!(ok.status.success(), "{ok:?}");
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "healthy");
    let down = docker(&[
        "exec",
        &container.0,
        "fresco-platform",
        "healthcheck",
        "--url",
        "http://127.0.0.1:1/api/health",
    ])
    .output()
    .unwrap();
    assert_eq!(down.status.code(), Some(1), "{down:?}");
    assert_eq!(
        String::from_utf8_lossy(&down.stderr).trim(),
        "unhealthy: cannot connect"
    );

    // A tenant, end to end through the containerized API, routed by Traefik.
    let sub = subdomain("image");
    let id = p.create_active(&sub).await;
    wait_traefik(&sub, "/signin", 200, Duration::from_secs(20)).await;
    let (status, body) = p.destroy(&id, &sub).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    p.wait_status(&id, "destroyed", Duration::from_secs(60))
        .await;
    assert!(
        p.managed_containers().await.is_empty(),
        "the destroyed tenant's container is left"
    );

    drop(container);
    p.cleanup().await;
    drop(image);
}

/// Every file the compose file names, relative to the repository: bind mounts and
/// `file:` configs (relative to compose/), build contexts and Dockerfiles, and the
/// repository paths its comments tell the operator to use.
fn compose_references(text: &str) -> Vec<PathBuf> {
    let compose = repo().join("compose");
    let mut found = Vec::new();
    let mut context = compose.clone();
    for line in text.lines() {
        let line = line.trim();
        if let Some(comment) = line.strip_prefix('#') {
            for word in comment.split_whitespace() {
                let word = word.trim_matches(|c: char| "`'\"(),;".contains(c));
                if ["compose/", "scripts/", "traefik/"]
                    .iter()
                    .any(|dir| word.starts_with(dir))
                    && !word.contains('*')
                    // compose/.env is what the operator makes from .env.example.
                    && word != "compose/.env"
                {
                    found.push(repo().join(word));
                }
            }
            continue;
        }
        let item = line.strip_prefix("- ").unwrap_or(line);
        if item.starts_with("./") || item.starts_with("../") {
            let path = item.split(':').next().unwrap();
            found.push(compose.join(path));
        } else if let Some(path) = item.strip_prefix("file: ") {
            // An operator's own file (a secret), named by a variable: not in the repository.
            if !path.contains("${") {
                found.push(compose.join(path.trim()));
            }
        } else if let Some(path) = item.strip_prefix("context: ") {
            context = compose.join(path.trim());
            found.push(context.clone());
        } else if let Some(path) = item.strip_prefix("dockerfile: ") {
            found.push(context.join(path.trim()));
        }
    }
    found
}

#[test]
fn compose_file_follows_the_compose_specification_and_names_only_existing_files() {
    let file = repo().join("compose/docker-compose.yml");
    let check = run(Command::new("bash").current_dir(repo()).args([
        "-c",
        "source scripts/lib/stack.sh && stack_check_jsonschema",
    ]));
    let program = stdout(&check).lines().last().unwrap().to_owned();
    run(Command::new(program)
        .arg("--schemafile")
        .arg(repo().join("compose/schema/compose-spec.json"))
        .arg(&file));

    let text = std::fs::read_to_string(&file).unwrap();
    let references = compose_references(&text);
    for expected in [
        "compose/Dockerfile",
        "compose/.env.example",
        "compose/pgbouncer.ini",
        "traefik/traefik.prod.yml",
        "scripts/lib/stack.sh",
    ] {
        assert!(
            references.iter().any(|r| r.ends_with(expected)),
            "{expected} not found among {references:?}"
        );
    }
    let missing: Vec<_> = references.iter().filter(|r| !r.exists()).collect();
    assert!(
        missing.is_empty(),
        "the compose file names missing files: {missing:?}"
    );
    // The image's build context sends the release binary the Dockerfile copies.
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    assert!(ignore
        .lines()
        .any(|l| l == "!target/release/fresco-platform"));
    let dockerfile = std::fs::read_to_string(repo().join("compose/Dockerfile")).unwrap();
    assert!(dockerfile.contains("ARG BINARY=target/release/fresco-platform"));
}
