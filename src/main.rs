use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use fresco_platform::cli::{Cli, Command};
use fresco_platform::config::LogFormat;
use fresco_platform::{app, cli, store};

fn init_logging(format: LogFormat) {
    let mut filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    // The Docker client logs request and response bodies at debug level, and
    // those carry tenant containers' env (database passwords): never let them
    // through, whatever RUST_LOG says.
    for quiet in ["bollard=info", "hyper=info", "hyper_util=info"] {
        if let Ok(directive) = quiet.parse() {
            filter = filter.add_directive(directive);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
        LogFormat::Text => builder.init(),
    }
}

async fn shutdown_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    token.cancel();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(config) => {
            init_logging(config.log_format);
            let listener = tokio::net::TcpListener::bind(config.listen_addr)
                .await
                .with_context(|| format!("binding {}", config.listen_addr))?;
            let token = CancellationToken::new();
            tokio::spawn(shutdown_signal(token.clone()));
            app::launch(listener, *config, token).await
        }
        Command::Migrate(db) => {
            init_logging(LogFormat::Text);
            let pool = store::connect(&db)
                .await
                .context("connecting to the platform database")?;
            store::migrate(&pool).await.context("applying migrations")?;
            println!("migrations applied");
            Ok(())
        }
        Command::Logs(args) => std::process::exit(cli::logs(args).await),
        Command::Tenants(args) => std::process::exit(cli::tenants(args).await),
        Command::Metrics(args) => std::process::exit(cli::metrics(args).await),
        Command::DbServers(args) => std::process::exit(cli::db_servers(args).await),
        Command::Healthcheck(args) => std::process::exit(cli::healthcheck(args).await),
        Command::Backups(args) => {
            if matches!(args.command, cli::BackupsCommand::Verify(_)) {
                init_logging(LogFormat::Text);
            }
            std::process::exit(cli::backups(args).await)
        }
        Command::CreateAdmin(args) => {
            let pool = store::connect(&args.db)
                .await
                .context("connecting to the platform database")?;
            store::migrate(&pool).await.context("applying migrations")?;
            let (user, key) =
                store::users::create_admin_with_key(&pool, &args.email, &args.key_name).await?;
            eprintln!(
                "admin {} ({}) — this API key is shown once:",
                user.email, user.id
            );
            println!("{}", key.secret);
            Ok(())
        }
    }
}
