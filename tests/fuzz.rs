//! The API keeps its documented contract under a property-based fuzz of every
//! operation (schemathesis, at least 2,000 generated requests): no server error,
//! no undocumented status or media type, no answer that breaks its schema.
//! Ignored by a plain `cargo test`; `scripts/fuzz` installs schemathesis and runs
//! it, and `scripts/test` runs `scripts/fuzz` after the other tests.

mod common;

use common::{random, Options, Platform};
use reqwest::StatusCode;

/// Examples per operation; about 40 operations make well over 2,000 requests.
fn examples() -> u32 {
    std::env::var("FUZZ_EXAMPLES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(60)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs schemathesis: run scripts/fuzz"]
async fn every_operation_keeps_its_documented_contract_under_fuzzing() {
    // Backups on, so their operations answer from their handlers.
    let backups = std::env::temp_dir().join(format!("fpt-fuzz-backups-{}", random(10)));
    std::fs::create_dir_all(&backups).unwrap();
    std::fs::write(backups.join("key"), "cd".repeat(32)).unwrap();
    let p = Platform::start(Options {
        extra: vec![
            ("BACKUP_KEY_FILE", backups.join("key").display().to_string()),
            ("BACKUP_DIR", backups.join("store").display().to_string()),
            ("BACKUP_SCHEDULE", "off".into()),
            ("BACKUP_TICK_SECS", "1".into()),
            // Reach the handlers' own rules rather than the login limit; 429 is
            // documented everywhere anyway.
            ("RATE_LIMIT_LOGIN", "100000".into()),
            // /metrics on, so it answers with its documented 401.
            ("METRICS_TOKEN", random(32)),
        ],
        ..Options::default()
    })
    .await;
    let run = p.fuzz(examples()).await;
    println!(
        "fuzz: {} requests over {} operations in {:.0} s; {} kinds of failure, {} errors",
        run.generated,
        run.operations,
        run.seconds,
        run.failures.len(),
        run.errors.len()
    );
    assert!(run.failures.is_empty(), "{:#?}", run.failures);
    assert!(
        run.errors.is_empty(),
        "schemathesis could not test: {:#?}",
        run.errors
    );
    assert!(run.generated >= 2000, "only {} requests", run.generated);
    assert!(run.operations >= 40, "only {} operations", run.operations);
    // The fuzz neither locked out nor demoted its own admin (else it tested little).
    let (status, me) = p
        .request(reqwest::Method::GET, "/api/v1/auth/me", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["role"], "admin", "{me}");
    p.cleanup().await;
    let _ = std::fs::remove_dir_all(&backups);
}
