//! `fresco-platform tenants`: list, show, and the lifecycle actions, which only
//! ask; the reconciler does the work.

use reqwest::Method;
use serde_json::{json, Value};

use super::api::{list_items, resolve, Api, TenantRef, PER_PAGE};
use super::failure::{out, Failure};
use super::{TenantsArgs, TenantsCommand};

pub(super) async fn run(args: &TenantsArgs) -> Result<(), Failure> {
    // Refuse before touching the network, so a forgotten flag costs nothing.
    if let TenantsCommand::Destroy {
        tenant,
        confirm: None,
    } = &args.command
    {
        return Err(Failure::Usage(format!(
            "refusing to destroy {tenant} without --confirm <its subdomain>: this deletes \
             its container, its database and every interview in it, and cannot be undone"
        )));
    }
    let api = args.client.connect()?;
    match &args.command {
        TenantsCommand::List { status, search } => list(&api, status, search).await,
        TenantsCommand::Get { tenant } => show(&api, tenant).await,
        TenantsCommand::Start { tenant } => act(&api, tenant, "start").await,
        TenantsCommand::Stop { tenant } => act(&api, tenant, "stop").await,
        TenantsCommand::Restart { tenant } => act(&api, tenant, "restart").await,
        TenantsCommand::Move { tenant, to } => {
            let tenant = resolve(&api, tenant).await?;
            let request = api
                .request(
                    Method::POST,
                    &tenant
                        .path("/move")
                        .replacen("/api/v1/", "/api/v1/admin/", 1),
                )
                .json(&json!({ "server": to }));
            let (text, body) = api.call(request).await?;
            if api.json {
                return api.print_raw(&text);
            }
            out(&format!(
                "{}: move {} from {} to {} requested; follow it with `fresco-platform tenants get {}`",
                tenant.name(),
                body["id"],
                body["fromServer"].as_str().unwrap_or("?"),
                body["toServer"].as_str().unwrap_or("?"),
                tenant.name()
            ))
        }
        TenantsCommand::Destroy { tenant, confirm } => {
            let tenant = resolve(&api, tenant).await?;
            let confirm = confirm.clone().unwrap_or_default();
            let request = api
                .request(Method::DELETE, &tenant.path(""))
                .json(&json!({ "confirm": confirm }));
            let (text, body) = api.call(request).await?;
            requested(&api, &tenant, "destroy", &text, &body)
        }
    }
}

async fn list(api: &Api, status: &Option<String>, search: &Option<String>) -> Result<(), Failure> {
    let mut rows = Vec::new();
    for page in 1.. {
        let mut query = vec![
            ("page", page.to_string()),
            ("perPage", PER_PAGE.to_string()),
        ];
        if let Some(s) = status {
            query.push(("status", s.clone()));
        }
        if let Some(s) = search {
            query.push(("search", s.clone()));
        }
        let (text, body) = api.get("/api/v1/tenants", &query).await?;
        let items = list_items(&body)?;
        if api.json {
            // Each page as the API sent it, one per line.
            api.print_raw(&text)?;
        }
        rows.extend(items.iter().map(|t| {
            ["id", "subdomain", "status", "url"].map(|k| t[k].as_str().unwrap_or("-").to_owned())
        }));
        if items.is_empty() || page * PER_PAGE >= body["meta"]["total"].as_u64().unwrap_or(0) {
            break;
        }
    }
    if api.json {
        return Ok(());
    }
    if rows.is_empty() {
        return out("no tenants");
    }
    let header = ["ID", "SUBDOMAIN", "STATUS", "URL"].map(str::to_owned);
    let mut widths = [0; 4];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let line = format!(
            "{:w0$}  {:w1$}  {:w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
        out(&line)?;
    }
    Ok(())
}

async fn show(api: &Api, reference: &str) -> Result<(), Failure> {
    let tenant = resolve(api, reference).await?;
    let (text, t) = api.get(&tenant.path(""), &[]).await?;
    if api.json {
        return api.print_raw(&text);
    }
    let s = |v: &Value| v.as_str().map(str::to_owned);
    let mut rows: Vec<(&str, String)> = vec![
        ("id", s(&t["id"]).unwrap_or_default()),
        ("subdomain", s(&t["subdomain"]).unwrap_or_default()),
        ("url", s(&t["url"]).unwrap_or_default()),
        (
            "status",
            match s(&t["desiredState"]) {
                Some(desired) => format!(
                    "{} (desired: {desired})",
                    s(&t["status"]).unwrap_or_default()
                ),
                None => s(&t["status"]).unwrap_or_default(),
            },
        ),
        ("image", s(&t["image"]).unwrap_or_default()),
    ];
    if let Some(action) = s(&t["currentAction"]) {
        rows.push(("in progress", action));
    }
    if let Some(error) = s(&t["lastError"]) {
        rows.push(("last error", error));
    }
    if let Some(state) = s(&t["container"]["state"]) {
        let mut container = state;
        if let Some(health) = s(&t["container"]["health"]) {
            container.push_str(&format!(", {health}"));
        }
        if let Some(since) = s(&t["container"]["startedAt"]) {
            container.push_str(&format!(", started {since}"));
        }
        rows.push(("container", container));
    }
    if let (Some(url), Some(deadline)) = (s(&t["setup"]["url"]), s(&t["setup"]["deadline"])) {
        rows.push(("setup", format!("{url} (open until {deadline})")));
    }
    if let Some(created) = s(&t["createdAt"]) {
        rows.push(("created", created));
    }
    if let Some(deployed) = s(&t["lastDeployedAt"]) {
        rows.push(("last deployed", deployed));
    }
    for (label, value) in rows {
        out(&format!("{label:<14}{value}"))?;
    }
    if let Some(logs) = t["recentDeployments"].as_array().filter(|l| !l.is_empty()) {
        out("recent deployments:")?;
        for entry in logs {
            let mut line = format!(
                "  {}  {} {}",
                s(&entry["createdAt"]).unwrap_or_default(),
                s(&entry["action"]).unwrap_or_default(),
                s(&entry["status"]).unwrap_or_default()
            );
            if let Some(error) = s(&entry["errorMessage"]) {
                line.push_str(&format!(": {error}"));
            }
            out(&line)?;
        }
    }
    Ok(())
}

async fn act(api: &Api, reference: &str, action: &str) -> Result<(), Failure> {
    let tenant = resolve(api, reference).await?;
    let request = api.request(Method::POST, &tenant.path(&format!("/{action}")));
    let (text, body) = api.call(request).await?;
    requested(api, &tenant, action, &text, &body)
}

/// The 202 of a lifecycle action: the reconciler does the work.
fn requested(
    api: &Api,
    tenant: &TenantRef,
    action: &str,
    text: &str,
    body: &Value,
) -> Result<(), Failure> {
    if api.json {
        return api.print_raw(text);
    }
    let name = body["subdomain"].as_str().unwrap_or(tenant.name());
    out(&format!("{action} requested for {name}"))
}
