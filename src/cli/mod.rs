//! The command line: the binary's argument tree (`args`), and the `logs`, `tenants`
//! and `metrics` commands, a client of the platform's own HTTP API, authenticated
//! with an API key, for people at a terminal and scripts.
//!
//! The client commands share where the API address and key come from and how a
//! tenant is named (`api`), how a failure becomes a message and an exit code
//! (`failure`), and a Server-Sent Events parser (`sse`) for following logs. Human
//! output by default; `--json` prints the API's JSON.
//!
//! Exit codes: 0 done, 1 the API (or the network) said no, 2 the command line or
//! the configuration is wrong.

mod api;
pub mod args;
mod backups;
mod db_servers;
mod failure;
mod healthcheck;
mod logs;
mod metrics;
pub mod sse;
mod tenants;

pub use args::{
    BackupVerifyArgs, BackupsArgs, BackupsCommand, Cli, ClientOptions, Command, CreateAdminArgs, DbServerAddArgs, DbServersArgs, DbServersCommand,
    HealthcheckArgs,
    LogsArgs, MetricsArgs, TenantsArgs, TenantsCommand,
};

use failure::Failure;

/// Prints a tenant's container logs; returns the exit code.
pub async fn logs(args: LogsArgs) -> i32 {
    if !args.follow {
        return finish(logs::run(&args).await);
    }
    // Ctrl-C is how a follow normally ends: not an error.
    let interrupted = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = logs::run(&args) => finish(result),
        () = interrupted => 0,
    }
}

/// Lists tenants or acts on one; returns the exit code.
pub async fn tenants(args: TenantsArgs) -> i32 {
    finish(tenants::run(&args).await)
}

/// Adds, lists, changes or drains database servers; returns the exit code.
pub async fn db_servers(args: DbServersArgs) -> i32 {
    finish(db_servers::run(&args).await)
}

/// Prints a tenant's current resource use; returns the exit code.
pub async fn metrics(args: MetricsArgs) -> i32 {
    finish(metrics::run(&args).await)
}

/// Recovery tests of backups, or a new key; returns the exit code.
pub async fn backups(args: BackupsArgs) -> i32 {
    finish(backups::run(args).await)
}

/// Probes the platform's health endpoint; returns the exit code.
pub async fn healthcheck(args: HealthcheckArgs) -> i32 {
    healthcheck::run(&args).await
}

fn finish(result: Result<(), Failure>) -> i32 {
    match result {
        Ok(()) | Err(Failure::OutputClosed) => 0,
        Err(failure) => {
            eprintln!("error: {failure}");
            failure.exit_code()
        }
    }
}
