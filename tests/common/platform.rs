//! The `Platform` under test: its own database and instance name, the server
//! in-process or as a child process, the containers and roles it made, and the
//! clean-up that removes all of it, even after a failed test.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bollard::query_parameters::{
    InspectContainerOptions, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use clap::Parser;
use sqlx::{Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use fresco_platform::cli::{Cli, Command as CliCommand};
use fresco_platform::config::ServeConfig;
use fresco_platform::domain::TenantId;
use fresco_platform::provision::TenantDatabases;

use super::{env, init_tracing, random, smtp, tenant_id};

#[derive(Clone)]
pub struct Options {
    pub isolation: &'static str,
    /// Run `fresco-platform serve` as a child process instead of in-process.
    pub process: bool,
    pub extra: Vec<(&'static str, String)>,
    /// Process mode: where its stderr (the log) goes.
    pub log_file: Option<std::path::PathBuf>,
    /// Process mode: extra environment (RUST_LOG, LOG_FORMAT).
    pub process_env: Vec<(&'static str, String)>,
    /// Send mail to an SMTP listener the test starts (`Platform::smtp`).
    pub smtp: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            isolation: "database",
            process: false,
            extra: vec![],
            log_file: None,
            process_env: vec![],
            smtp: false,
        }
    }
}

enum Server {
    InProcess {
        token: CancellationToken,
        handle: tokio::task::JoinHandle<anyhow::Result<()>>,
    },
    Process(Child),
    Stopped,
}

pub struct Platform {
    pub base: String,
    pub key: String,
    pub pool: PgPool,
    pub db_name: String,
    pub db_url: String,
    pub instance: String,
    pub docker: Docker,
    pub http: reqwest::Client,
    pub opts: Options,
    pub smtp: Option<std::sync::Arc<smtp::SmtpSink>>,
    port: u16,
    server: Server,
    cleaned: bool,
}

fn with_database(url: &str, db: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("database url has a path");
    format!("{base}/{db}")
}

impl Platform {
    pub async fn start(opts: Options) -> Self {
        init_tracing();
        let instance = format!("fpt_{}", random(10));
        let admin = env("FP_TEST_ADMIN_DATABASE_URL");
        let mut conn = PgConnection::connect(&admin)
            .await
            .expect("connect as the platform role");
        sqlx::raw_sql(&format!("CREATE DATABASE \"{instance}\""))
            .execute(&mut conn)
            .await
            .expect("create test db");
        conn.close().await.ok();
        let db_url = with_database(&admin, &instance);
        let pool = PgPool::connect(&db_url)
            .await
            .expect("connect to the test db");
        fresco_platform::store::migrate(&pool)
            .await
            .expect("migrate");
        let (_, key) = fresco_platform::store::users::create_admin_with_key(
            &pool,
            "admin@test.invalid",
            "test",
        )
        .await
        .expect("admin key");
        let docker = Docker::connect_with_local_defaults()
            .unwrap()
            .negotiate_version()
            .await
            .unwrap();
        let port = free_port();
        let sink = if opts.smtp {
            Some(std::sync::Arc::new(smtp::SmtpSink::start().await))
        } else {
            None
        };
        let mut platform = Self {
            base: format!("http://127.0.0.1:{port}"),
            key: key.secret,
            pool,
            db_name: instance.clone(),
            db_url,
            instance,
            docker,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            opts,
            smtp: sink,
            port,
            server: Server::Stopped,
            cleaned: false,
        };
        platform.start_server().await;
        platform
    }

    pub fn args(&self) -> Vec<(String, String)> {
        let mut args: Vec<(String, String)> = vec![
            ("DATABASE_URL".into(), self.db_url.clone()),
            ("LISTEN_ADDR".into(), format!("127.0.0.1:{}", self.port)),
            ("PLATFORM_INSTANCE".into(), self.instance.clone()),
            ("TENANT_ISOLATION".into(), self.opts.isolation.into()),
            ("RESYNC_INTERVAL_SECS".into(), "2".into()),
            ("RECONCILE_BACKOFF_MS".into(), "200".into()),
            ("RECONCILE_MAX_ATTEMPTS".into(), "3".into()),
            ("TENANT_STOP_TIMEOUT_SECS".into(), "5".into()),
            // Tests poll; only the rate-limit tests want the real limits.
            ("RATE_LIMIT_GENERAL".into(), "100000".into()),
            ("RATE_LIMIT_ACTIONS".into(), "10000".into()),
            (
                "MAIL_DIR".into(),
                std::env::temp_dir()
                    .join(format!("{}-mail", self.instance))
                    .display()
                    .to_string(),
            ),
            ("PLATFORM_URL".into(), self.base.clone()),
        ];
        // Fresco 3.1+ (and the default stand-in) cannot run schema-isolated: schema
        // mode runs the stand-in that imitates Fresco 3.0.
        if self.opts.isolation == "schema" {
            args.push((
                "FRESCO_IMAGE".into(),
                super::env("FRESCO_STANDIN_IMAGE_3_0"),
            ));
        }
        if let Some(sink) = &self.smtp {
            args.push(("SMTP_URL".into(), sink.url()));
        }
        for (k, v) in &self.opts.extra {
            args.retain(|(name, _)| name != k);
            args.push((k.to_string(), v.clone()));
        }
        args
    }

    pub fn config(&self) -> ServeConfig {
        // Everything not given here comes from the environment scripts/test exports.
        let mut argv = vec!["fresco-platform".to_owned(), "serve".to_owned()];
        // Each flag is named after its variable: TENANT_ISOLATION is --tenant-isolation.
        for (k, v) in self.args() {
            argv.push(format!("--{}", k.to_lowercase().replace('_', "-")));
            argv.push(v);
        }
        match Cli::try_parse_from(argv)
            .expect("valid test config")
            .command
        {
            CliCommand::Serve(cfg) => *cfg,
            _ => unreachable!(),
        }
    }

    pub async fn start_server(&mut self) {
        if self.opts.process {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_fresco-platform"));
            cmd.arg("serve")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit());
            if let Some(path) = &self.opts.log_file {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .expect("log file");
                cmd.stderr(file);
            }
            for (k, v) in self.args() {
                cmd.env(k, v);
            }
            for (k, v) in &self.opts.process_env {
                cmd.env(k, v);
            }
            self.server = Server::Process(cmd.spawn().expect("spawn fresco-platform serve"));
        } else {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
                .await
                .expect("bind api port");
            let token = CancellationToken::new();
            let handle = tokio::spawn(fresco_platform::app::launch(
                listener,
                self.config(),
                token.clone(),
            ));
            self.server = Server::InProcess { token, handle };
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self
                .http
                .get(format!("{}/api/ready", self.base))
                .send()
                .await
            {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "platform did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The pid of the `serve` process, in process mode.
    pub fn server_pid(&self) -> Option<u32> {
        match &self.server {
            Server::Process(child) => Some(child.id()),
            _ => None,
        }
    }

    /// SIGKILL for a child process; an abrupt abort in-process.
    pub async fn kill_server(&mut self) {
        match std::mem::replace(&mut self.server, Server::Stopped) {
            Server::Process(mut child) => {
                child.kill().expect("SIGKILL serve");
                child.wait().ok();
            }
            Server::InProcess { token, handle } => {
                token.cancel();
                let _ = handle.await;
            }
            Server::Stopped => {}
        }
    }

    pub async fn container(&self, id: &str) -> Option<bollard::models::ContainerInspectResponse> {
        let name = tenant_id(id).container_name();
        self.docker
            .inspect_container(&name, None::<InspectContainerOptions>)
            .await
            .ok()
    }

    /// The database password the platform handed to the tenant's container.
    pub async fn tenant_password(&self, id: &str) -> String {
        let c = self.container(id).await.expect("tenant container exists");
        let env = c.config.and_then(|c| c.env).unwrap_or_default();
        let url = env
            .iter()
            .find_map(|e| e.strip_prefix("DATABASE_URL="))
            .expect("DATABASE_URL in env");
        let userinfo = url
            .strip_prefix("postgres://")
            .unwrap()
            .split('@')
            .next()
            .unwrap();
        userinfo.split_once(':').unwrap().1.to_owned()
    }

    /// Schema mode's shared tenants database beside this platform's database.
    pub fn tenants_db(&self) -> String {
        format!("{}_tenants", self.db_name)
    }

    /// A connection to `database` on the main server as the platform's role.
    pub async fn connect_db(&self, database: &str) -> PgConnection {
        PgConnection::connect(&with_database(&self.db_url, database))
            .await
            .unwrap_or_else(|e| panic!("connect to {database} as the platform role: {e}"))
    }

    /// A connection as the tenant's own role, from the host.
    pub async fn connect_as_tenant(
        &self,
        id: &str,
        database: &str,
    ) -> Result<PgConnection, sqlx::Error> {
        self.connect_as_tenant_on(id, &env("FP_PG_PORT"), database)
            .await
    }

    /// The same to the Postgres (or PgBouncer) on another local port.
    pub async fn connect_as_tenant_on(
        &self,
        id: &str,
        port: &str,
        database: &str,
    ) -> Result<PgConnection, sqlx::Error> {
        let password = self.tenant_password(id).await;
        let role = tenant_id(id).role_name();
        let url = format!("postgres://{role}:{password}@127.0.0.1:{port}/{database}");
        PgConnection::connect(&url).await
    }

    pub async fn managed_containers(&self) -> Vec<String> {
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![format!("fresco-platform.instance={}", self.instance)],
        )]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        self.docker
            .list_containers(Some(options))
            .await
            .unwrap()
            .into_iter()
            .filter_map(|c| c.names.and_then(|n| n.into_iter().next()))
            .collect()
    }

    pub async fn cleanup(mut self) {
        self.cleanup_inner().await;
    }

    async fn cleanup_inner(&mut self) {
        if self.cleaned {
            return;
        }
        self.cleaned = true;
        self.kill_server().await;
        // Every place a tenant's data may be: where its row says, and both ends
        // of any move it made.
        let places: Vec<(
            uuid::Uuid,
            Option<uuid::Uuid>,
            Option<String>,
            Option<String>,
        )> = sqlx::query_as(
            "SELECT id, db_server_id, db_name, db_isolation FROM tenants
                 UNION SELECT tenant_id, from_server_id, from_db, from_isolation FROM tenant_moves
                 UNION SELECT tenant_id, to_server_id, to_db, to_isolation FROM tenant_moves",
        )
        .fetch_all(&self.pool)
        .await
        .unwrap_or_default();
        let config = self.config();
        let dbs = TenantDatabases::new(&config.db, &config.tenants, &config.data_plane)
            .expect("tenant databases");
        let remove = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        for (id, server, database, isolation) in places {
            let id = TenantId(id);
            let _ = self
                .docker
                .remove_container(&id.container_name(), Some(remove.clone()))
                .await;
            let (Some(server), Some(database), Some(isolation)) = (server, database, isolation)
            else {
                continue;
            };
            let Ok(server) = fresco_platform::store::db_servers::get(&self.pool, server).await
            else {
                continue;
            };
            let loc = fresco_platform::domain::DbLocation {
                server: server.id,
                database,
                isolation: isolation.parse().expect("isolation"),
            };
            if let Err(e) = dbs.teardown(&server, &loc, id).await {
                eprintln!("cleanup of tenant {id} failed: {e}");
            }
        }
        for name in self.managed_containers().await {
            let _ = self
                .docker
                .remove_container(name.trim_start_matches('/'), Some(remove.clone()))
                .await;
        }
        self.pool.close().await;
        if let Ok(mut conn) = PgConnection::connect(&env("FP_TEST_ADMIN_DATABASE_URL")).await {
            // The platform database, and the tenants database schema mode made
            // beside it with its group role (one statement each: DROP DATABASE
            // cannot run in the implicit transaction of several).
            let db = &self.db_name;
            for sql in [
                format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"),
                format!("DROP DATABASE IF EXISTS \"{db}_tenants\" WITH (FORCE)"),
                format!("DROP ROLE IF EXISTS \"{db}_tenants_connect\""),
            ] {
                let _ = sqlx::raw_sql(&sql).execute(&mut conn).await;
            }
        }
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        // A failed test still cleans up: on a fresh runtime in its own thread.
        let server = std::mem::replace(&mut self.server, Server::Stopped);
        if let Server::Process(mut child) = server {
            let _ = child.kill();
            let _ = child.wait();
        } else if let Server::InProcess { token, .. } = server {
            token.cancel();
        }
        let mut this = Platform {
            base: self.base.clone(),
            key: String::new(),
            pool: self.pool.clone(),
            db_name: self.db_name.clone(),
            db_url: self.db_url.clone(),
            instance: self.instance.clone(),
            docker: self.docker.clone(),
            http: self.http.clone(),
            opts: self.opts.clone(),
            smtp: None,
            port: self.port,
            server: Server::Stopped,
            cleaned: false,
        };
        self.cleaned = true;
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async move {
                // The pool belongs to the failed test's runtime: use fresh connections.
                this.pool = PgPool::connect(&this.db_url)
                    .await
                    .expect("reconnect for cleanup");
                this.docker = Docker::connect_with_local_defaults()
                    .unwrap()
                    .negotiate_version()
                    .await
                    .unwrap();
                this.cleanup_inner().await;
            });
        })
        .join();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
