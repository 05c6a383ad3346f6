//! `fresco-platform db-servers`: `add` checks a new Postgres server and records
//! it in the platform database (it carries a credential, so it goes straight
//! there, like `create-admin`); `list`, `update` and `drain` go through the API.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use sqlx::{ConnectOptions, Connection};

use super::api::Api;
use super::failure::{out, Failure};
use super::{DbServerAddArgs, DbServersArgs, DbServersCommand};
use crate::domain::budget::{check_budget, platform_share};
use crate::store;

pub(super) async fn run(args: &DbServersArgs) -> Result<(), Failure> {
    if let DbServersCommand::Add(add_args) = &args.command {
        return add(add_args).await;
    }
    let api = args.client.connect()?;
    match &args.command {
        DbServersCommand::Add(_) => unreachable!("handled above"),
        DbServersCommand::List => list(&api).await,
        DbServersCommand::Update {
            name,
            capacity,
            draining,
        } => {
            if capacity.is_none() && draining.is_none() {
                return Err(Failure::Usage(
                    "nothing to change: give --capacity N and/or --draining true|false".into(),
                ));
            }
            update(
                &api,
                name,
                json!({ "capacity": capacity, "draining": draining }),
            )
            .await
        }
        DbServersCommand::Drain { name } => update(&api, name, json!({ "draining": true })).await,
    }
}

async fn list(api: &Api) -> Result<(), Failure> {
    let (text, body) = api.get("/api/v1/admin/db-servers", &[]).await?;
    if api.json {
        return api.print_raw(&text);
    }
    let rows: Vec<[String; 5]> = body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let text = |k: &str| s[k].as_str().unwrap_or("-").to_owned();
            [
                text("name"),
                format!(
                    "{}/{}",
                    s["tenants"].as_i64().unwrap_or(0),
                    s["capacity"].as_i64().unwrap_or(0)
                ),
                if s["draining"] == true {
                    "draining"
                } else {
                    "open"
                }
                .to_owned(),
                text("tenantHost"),
                text("poolerHost"),
            ]
        })
        .collect();
    out(&format!(
        "{:<20} {:>12}  {:<9} {:<24} POOLER",
        "NAME", "TENANTS", "STATE", "TENANT HOST"
    ))?;
    for r in rows {
        out(&format!(
            "{:<20} {:>12}  {:<9} {:<24} {}",
            r[0], r[1], r[2], r[3], r[4]
        ))?;
    }
    Ok(())
}

async fn update(api: &Api, name: &str, change: Value) -> Result<(), Failure> {
    let path = format!("/api/v1/admin/db-servers/{}", urlencode(name));
    let request = api.request(Method::PATCH, &path).json(&change);
    let (text, body) = api.call(request).await?;
    if api.json {
        return api.print_raw(&text);
    }
    out(&format!(
        "{}: {} of {} tenants{}",
        body["name"].as_str().unwrap_or(name),
        body["tenants"].as_i64().unwrap_or(0),
        body["capacity"].as_i64().unwrap_or(0),
        if body["draining"] == true {
            ", draining: its tenants are being moved to the other servers"
        } else {
            ""
        }
    ))
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn add(args: &DbServerAddArgs) -> Result<(), Failure> {
    let name = args.name.trim();
    let valid = (1..=40).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !valid {
        return Err(Failure::Usage(format!(
            "--name {name:?}: use 1–40 lowercase letters, digits and dashes, not at either end"
        )));
    }
    if !(1..=100_000).contains(&args.capacity) {
        return Err(Failure::Usage(
            "--capacity must be between 1 and 100000".into(),
        ));
    }
    for (flag, host) in [
        ("--tenant-host", Some(args.tenant_host.as_str())),
        ("--pooler-host", args.pooler_host.as_deref()),
    ] {
        if let Some(h) = host {
            let port = h.rsplit_once(':').map(|(_, p)| p);
            if port.and_then(|p| p.parse::<u16>().ok()).is_none() {
                return Err(Failure::Usage(format!(
                    "{flag} {h:?}: give host:port, or :port for the tenants network's gateway"
                )));
            }
        }
    }
    // The server must answer as a role that can do the platform's work there.
    let options: sqlx::postgres::PgConnectOptions = args
        .db_server_admin_url
        .parse()
        .map_err(|_| Failure::Usage("DB_SERVER_ADMIN_URL is not a postgres:// URL".into()))?;
    let options = options.disable_statement_logging();
    let connect = sqlx::PgConnection::connect_with(&options);
    let mut conn = tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .map_err(|_| Failure::Failed("the server did not answer within 10 s".into()))?
        .map_err(|e| Failure::Failed(format!("cannot connect to the server: {e}")))?;
    let (createrole, createdb, superuser): (bool, bool, bool) = sqlx::query_as(
        "SELECT rolcreaterole, rolcreatedb, rolsuper FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(|e| Failure::Failed(format!("cannot read the role's attributes: {e}")))?;
    if !(createrole && createdb) {
        return Err(Failure::Failed(
            "the role of DB_SERVER_ADMIN_URL needs CREATEROLE and CREATEDB there".into(),
        ));
    }
    if superuser {
        eprintln!(
            "warning: the role of DB_SERVER_ADMIN_URL is a superuser; a role with only \
             CREATEROLE and CREATEDB is enough and safer"
        );
    }
    let mut settings = [
        ("max_connections", 100i64),
        ("superuser_reserved_connections", 3),
    ];
    for (name, value) in settings.iter_mut() {
        if let Ok(v) = sqlx::query_scalar::<_, String>(&format!("SHOW {name}"))
            .fetch_one(&mut conn)
            .await
        {
            *value = v.parse().unwrap_or(*value);
        }
    }
    let [(_, max), (_, reserved)] = settings;
    let _ = conn.close().await;
    check_budget(
        args.capacity as i64,
        args.tenant_connection_limit as i64,
        max,
        reserved,
        platform_share(args.db_admin_pool_size),
    )
    .map_err(Failure::Failed)?;
    let pool = store::connect(&args.db)
        .await
        .map_err(|e| Failure::Failed(format!("cannot reach the platform database: {e}")))?;
    store::migrate(&pool)
        .await
        .map_err(|e| Failure::Failed(format!("migrations: {e}")))?;
    let server = store::db_servers::insert(
        &pool,
        store::db_servers::NewServer {
            name,
            admin_url: &args.db_server_admin_url,
            tenant_host: &args.tenant_host,
            pooler_host: args.pooler_host.as_deref(),
            capacity: args.capacity,
        },
    )
    .await
    .map_err(|e| match e {
        store::StoreError::Conflict(_) => {
            Failure::Failed(format!("a database server named {name} exists already"))
        }
        e => Failure::Failed(format!("cannot record the server: {e}")),
    })?;
    out(&format!(
        "database server {} added ({}; up to {} tenants)",
        server.name,
        crate::domain::redacted_dsn(&args.db_server_admin_url),
        server.capacity
    ))
}
