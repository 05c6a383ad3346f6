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
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected $ref {r}"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
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
    }
    p.cleanup().await;
}
