//! Requests a test makes of the platform's API: as the admin, as another key, or
//! as a browser; creating tenants and waiting for them to settle.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::Platform;

impl Platform {
    /// A browser: keeps cookies, and sends this platform's Origin like its own pages do.
    pub fn browser(&self) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("origin", self.base.parse().unwrap());
        reqwest::Client::builder()
            .cookie_store(true)
            .default_headers(headers)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    /// A member with a password and an API key, made directly in the store.
    pub async fn member(&self, email: &str, password: &str) -> Member {
        let hash = fresco_platform::domain::password::hash(password).unwrap();
        let mut tx = self.pool.begin().await.unwrap();
        let id = fresco_platform::store::users::insert_member(&mut tx, email, None, &hash)
            .await
            .unwrap();
        let key = fresco_platform::store::users::insert_api_key(&mut tx, id, "test")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        Member {
            id,
            key: key.secret,
            email: email.to_owned(),
        }
    }

    /// `member` with a verified email, as creating tenants needs.
    pub async fn verified_member(&self, email: &str, password: &str) -> Member {
        let m = self.member(email, password).await;
        fresco_platform::store::users::mark_email_verified(&self.pool, m.id, email)
            .await
            .unwrap();
        m
    }

    /// A request with another key (or none).
    pub async fn request_as(
        &self,
        key: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        (status, resp.json::<Value>().await.unwrap_or(Value::Null))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        (status, body)
    }

    pub async fn create_tenant(&self, subdomain: &str) -> (StatusCode, Value) {
        self.request(
            reqwest::Method::POST,
            "/api/v1/tenants",
            Some(json!({ "subdomain": subdomain, "ownerEmail": "owner@test.invalid" })),
        )
        .await
    }

    pub async fn create_active(&self, subdomain: &str) -> String {
        let (status, body) = self.create_tenant(subdomain).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let id = body["id"].as_str().unwrap().to_owned();
        self.wait_status(&id, "active", Duration::from_secs(60))
            .await;
        id
    }

    pub async fn tenant(&self, id: &str) -> Value {
        let (status, body) = self
            .request(reqwest::Method::GET, &format!("/api/v1/tenants/{id}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    pub async fn action(&self, id: &str, action: &str) -> (StatusCode, Value) {
        self.request(
            reqwest::Method::POST,
            &format!("/api/v1/tenants/{id}/{action}"),
            None,
        )
        .await
    }

    pub async fn destroy(&self, id: &str, confirm: &str) -> (StatusCode, Value) {
        self.request(
            reqwest::Method::DELETE,
            &format!("/api/v1/tenants/{id}"),
            Some(json!({ "confirm": confirm })),
        )
        .await
    }

    /// Waits until the tenant reaches `status` with nothing in flight.
    pub async fn wait_status(&self, id: &str, status: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let t = self.tenant(id).await;
            if t["status"] == status && t["currentAction"].is_null() {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "tenant never reached {status}; last seen: {t:#}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn deployments(&self, id: &str) -> Vec<(String, String)> {
        let (status, body) = self
            .request(
                reqwest::Method::GET,
                &format!("/api/v1/tenants/{id}/deployments?perPage=100"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let mut rows: Vec<(i64, String, String)> = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["id"].as_i64().unwrap(),
                    r["action"].as_str().unwrap().to_owned(),
                    r["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        rows.sort();
        rows.into_iter().map(|(_, a, s)| (a, s)).collect()
    }
}

pub struct Member {
    pub id: uuid::Uuid,
    pub key: String,
    pub email: String,
}
