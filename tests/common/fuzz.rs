//! Schemathesis against a platform under test: property-based requests generated
//! from `GET /api/openapi.json` for every operation, each answer checked against
//! the document. `scripts/fuzz` installs schemathesis and names it in
//! `FP_SCHEMATHESIS`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{env, subdomain, Platform};

/// What the document promises, checked on every answer: no 5xx, only documented
/// statuses and media types, bodies and headers that match their schemas, and
/// credentials required where the document says so.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
response_schema_conformance,response_headers_conformance,ignored_auth";

/// The run as schemathesis reports it.
pub struct FuzzRun {
    pub generated: u64,
    pub operations: u64,
    pub seconds: f64,
    /// One line per kind of failure: code, title, count, operations.
    pub failures: Vec<String>,
    /// Failures of schemathesis itself (it could not test something).
    pub errors: Vec<String>,
}

impl Platform {
    /// Fuzzes every operation with `examples` generated cases each, as the admin.
    /// A tenant and a signup session exist first, so the operations on `{id}`
    /// reach their real work and not only their 404. Streams are read for one
    /// event, so none runs longer than the request timeout.
    pub async fn fuzz(&self, examples: u32) -> FuzzRun {
        let st = env("FP_SCHEMATHESIS");
        let tenant = self.create_active(&subdomain("fuzz")).await;
        let (status, session) = self
            .request(
                reqwest::Method::POST,
                "/api/v1/wizard/sessions",
                Some(json!({ "email": format!("{}@example.org", subdomain("fuzz")) })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{session}");
        let session = session["sessionId"].as_str().unwrap().to_owned();

        let dir = std::env::temp_dir().join(format!("{}-fuzz", self.instance));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("schemathesis.toml");
        std::fs::write(
            &config,
            format!(
                r#"# Written by tests/common/fuzz.rs.
headers = {{ Authorization = "Bearer ${{FUZZ_API_KEY}}" }}
request-timeout = 10.0
max-stream-events = 1
workers = 2

[generation]
max-examples = {examples}
database = "none"

[[operations]]
include-path-regex = "^/api/v1/tenants/\\{{id\\}}"
parameters = {{ "path.id" = "{tenant}" }}

[[operations]]
include-path-regex = "^/api/v1/wizard/sessions/\\{{id\\}}"
parameters = {{ "path.id" = "{session}" }}
"#
            ),
        )
        .unwrap();
        let report = dir.join("report.json");
        let log = dir.join("schemathesis.log");
        let run = tokio::process::Command::new(&st)
            .arg("--config-file")
            .arg(&config)
            .arg("run")
            .arg(self.url("/api/openapi.json"))
            .args(["--checks", CHECKS, "--no-color", "--report", "json"])
            .arg("--report-json-path")
            .arg(&report)
            .env("FUZZ_API_KEY", &self.key)
            // Its caches go to the run's folder, not the work tree.
            .current_dir(&dir)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .status();
        let status = tokio::time::timeout(Duration::from_secs(900), run)
            .await
            .expect("schemathesis finished within 15 minutes")
            .unwrap_or_else(|e| panic!("running {st}: {e}"));
        let output = std::fs::read_to_string(&log).unwrap_or_default();
        // The summary, and each failure with its reproduction, for the reader.
        let start = output
            .find("=== FAILURES")
            .or_else(|| output.find("=== SUMMARY"));
        println!("{}", &output[start.unwrap_or(0)..]);
        let report: Value = serde_json::from_str(
            &std::fs::read_to_string(&report)
                .unwrap_or_else(|_| panic!("no report from schemathesis ({status}): {output}")),
        )
        .unwrap();
        let lines = |key: &str| -> Vec<String> {
            report[key]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| {
                    format!(
                        "{} {} x{} in {}",
                        f["code"].as_str().unwrap_or("-"),
                        f["title"].as_str().unwrap_or("-"),
                        f["count"],
                        f["operations"]
                    )
                })
                .collect()
        };
        let run = FuzzRun {
            generated: report["test_cases"]["generated"].as_u64().unwrap_or(0),
            operations: report["operations"]["tested"].as_u64().unwrap_or(0),
            seconds: report["running_time"].as_f64().unwrap_or(0.0),
            failures: lines("failures"),
            errors: lines("errors"),
        };
        let _ = std::fs::remove_dir_all(&dir);
        run
    }
}
