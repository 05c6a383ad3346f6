//! The OpenAPI document is a valid OpenAPI 3 document, names the product's
//! procedures, and every route it lists is served. (Routes are registered from
//! their handlers' annotations, so the router serves nothing the document lacks.)

mod common;

use std::collections::BTreeSet;

use common::{Options, Platform};
use reqwest::StatusCode;
use serde_json::Value;

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    if let Some(s) = v.as_str() {
                        out.push(s.to_owned());
                    }
                }
                refs(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_is_valid_and_matches_the_router() {
    let p = Platform::start(Options::default()).await;
    let r = reqwest::get(p.url("/api/openapi.json")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let doc: Value = r.json().await.unwrap();
    // It parses as OpenAPI 3.1 (what utoipa writes), every operation included.
    let parsed = oas3::from_json(doc.to_string()).expect("a valid OpenAPI 3.1 document");
    assert!(parsed.openapi.starts_with("3.1"), "{}", parsed.openapi);
    assert!(parsed.operations().count() > 30);

    // Every reference resolves.
    let mut all = vec![];
    refs(&doc, &mut all);
    for r in &all {
        let (kind, name) = r
            .strip_prefix("#/components/")
            .and_then(|r| r.split_once('/'))
            .unwrap_or_else(|| panic!("unexpected $ref {r}"));
        assert!(
            ["schemas", "responses"].contains(&kind) && doc["components"][kind][name].is_object(),
            "dangling $ref {r}"
        );
    }

    // Operations: unique ids, the spec's procedure names among them.
    let mut documented = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            documented.insert((method.to_uppercase(), path.clone()));
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(ids.insert(id.to_owned()), "duplicate operationId {id}");
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{id} documents no response"
            );
        }
    }
    for id in [
        "wizard.checkSubdomain",
        "wizard.createSignupSession",
        "wizard.updateSession",
        "wizard.deployTenant",
        "tenants.list",
        "tenants.get",
        "tenants.start",
        "tenants.stop",
        "tenants.restart",
        "tenants.destroy",
        "tenants.getLogs",
    ] {
        assert!(ids.contains(id), "operationId {id} missing");
    }

    // Each documented route is really there (not the router's fallback).
    let client = reqwest::Client::new();
    for (method, path) in &documented {
        let url = p.url(&path.replace("{id}", &uuid::Uuid::new_v4().to_string()));
        let answer = client
            .request(method.parse().unwrap(), url)
            .send()
            .await
            .unwrap();
        let status = answer.status();
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_ne!(
            body["error"]["message"], "no such endpoint",
            "{method} {path} is not routed"
        );
        // The document says which operations need credentials, and it is right.
        let op = &doc["paths"][path][method.to_lowercase()];
        let public = op["security"].as_array().is_some_and(|s| s.is_empty());
        if public {
            assert_ne!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} is documented as public"
            );
        } else if op["operationId"] != "platform.metrics" {
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} answers without credentials"
            );
        }
    }
    p.cleanup().await;
}

/// The shared answers each operation documents: every operation the bounds, the
/// rate limit and the server errors; those that take a body or query parameters
/// 400 and 422; every one of them with the error envelope.
#[test]
fn every_operation_documents_the_errors_it_can_answer() {
    let doc = serde_json::to_value(fresco_platform::http::document()).unwrap();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap();
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let takes_query = params.iter().any(|p| p["in"] == "query");
            let takes_body = op.get("requestBody").is_some();
            let mut expected = vec!["413", "414", "429", "431", "500", "503"];
            if takes_body || !params.is_empty() {
                expected.push("400");
            }
            if takes_body || takes_query {
                expected.push("422");
            }
            for status in expected {
                let answer = &op["responses"][status];
                let answer = match answer["$ref"].as_str() {
                    Some(r) => &doc["components"]["responses"][r.rsplit('/').next().unwrap()],
                    None => answer,
                };
                let schema = &answer["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(
                    schema, "#/components/schemas/ErrorBody",
                    "{id} ({method} {path}) does not document {status} with the envelope"
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 30);
    for rate_limited in ["RateLimited", "Unavailable"] {
        assert!(
            doc["components"]["responses"][rate_limited]["headers"]["Retry-After"].is_object(),
            "{rate_limited} documents Retry-After"
        );
    }
}

#[test]
fn streaming_operations_document_their_media_types() {
    let doc = serde_json::to_value(fresco_platform::http::document()).unwrap();
    let content = |path: &str| doc["paths"][path]["get"]["responses"]["200"]["content"].clone();
    for path in [
        "/api/v1/tenants/{id}/events",
        "/api/v1/tenants/{id}/metrics/stream",
        "/api/v1/tenants/{id}/logs",
    ] {
        assert_eq!(
            content(path)["text/event-stream"]["schema"]["$ref"],
            "#/components/schemas/ServerSentEvent",
            "{path}"
        );
    }
    let logs = content("/api/v1/tenants/{id}/logs");
    for media in ["application/json", "application/x-ndjson", "text/plain"] {
        assert!(logs[media].is_object(), "logs document {media}");
    }
}
