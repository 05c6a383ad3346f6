//! A real browser for the pages: Debian's headless Chromium driven through its
//! chromedriver (each `Browser` starts its own on a free port) with fantoccini.
//! `axe` runs the vendored axe-core in the page; `screenshots` writes the page
//! at 390, 768 and 1280 px wide into `.local/screenshots/`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use super::Platform;

/// axe-core 4.14.1 from npm, vendored.
const AXE: &str = include_str!("../assets/axe-4.14.1.min.js");

pub const WIDTHS: [u32; 3] = [390, 768, 1280];

pub struct Browser {
    pub client: Client,
    pub base: String,
    driver: Child,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn chromedriver() -> String {
    std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".to_owned())
}

impl Browser {
    /// A fresh browser (no cookies) pointed at `platform`.
    pub async fn open(platform: &Platform) -> Self {
        // fantoccini's TLS stack needs a process-wide crypto provider chosen.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let port = free_port();
        let driver = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver (scripts/test installs chromium-driver)");
        let url = format!("http://127.0.0.1:{port}");
        let caps: serde_json::Map<String, Value> = serde_json::from_value(json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned()),
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                         "--window-size=1280,900", "--disable-extensions", "--no-first-run",
                         "--disable-background-networking", "--lang=en-US"]
            }
        }))
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            match ClientBuilder::rustls()
                .expect("rustls")
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("connect to chromedriver: {e}"),
            }
        };
        Self {
            client,
            base: platform.base.clone(),
            driver,
        }
    }

    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    /// The current path (and query).
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    pub async fn find(&self, css: &str) -> Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("find {css}: {e}"))
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    /// Waits until an element matching `css` exists (and returns it).
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Element {
        self.client
            .wait()
            .at_most(timeout)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("waiting for {css}: {e}"))
    }

    /// Waits until `css`'s text contains `needle`.
    pub async fn wait_text(&self, css: &str, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = match self.client.find(Locator::Css(css)).await {
                Ok(e) => e.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if text.contains(needle) {
                return text;
            }
            if Instant::now() > deadline {
                panic!("{css} never contained {needle:?}; last text: {text:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Types into the field `css` (clearing it first).
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    /// Presses keys on whatever has focus (e.g. "\u{E004}" is Tab, "\u{E007}" Enter).
    pub async fn keys(&self, keys: &str) {
        let active = self.client.active_element().await.unwrap();
        active.send_keys(keys).await.unwrap();
    }

    /// The element that has focus, described by its id, name or text.
    pub async fn focused(&self) -> String {
        self.client
            .execute(
                "var e = document.activeElement; return e ? (e.id || e.name || e.textContent.trim().slice(0, 40) || e.tagName) : null;",
                vec![],
            )
            .await
            .unwrap()
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Runs axe-core in the page; returns the serious and critical violations
    /// as "rule: target …" lines (empty when the page passes).
    pub async fn axe(&self) -> Vec<String> {
        self.client.execute(AXE, vec![]).await.expect("inject axe");
        let result = self
            .client
            .execute_async(
                "var done = arguments[arguments.length - 1];
                 axe.run(document, { resultTypes: ['violations'] })
                    .then(function (r) { done(JSON.stringify(r.violations)); })
                    .catch(function (e) { done(JSON.stringify([{ id: 'axe-error', impact: 'critical', help: String(e), nodes: [] }])); });",
                vec![],
            )
            .await
            .expect("run axe");
        let violations: Vec<Value> = serde_json::from_str(result.as_str().unwrap()).unwrap();
        violations
            .iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .map(|v| {
                let targets: Vec<String> = v["nodes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .take(5)
                    .map(|n| n["target"].to_string())
                    .collect();
                format!("{}: {} at {}", v["id"], v["help"], targets.join(", "))
            })
            .collect()
    }

    /// Asserts that axe finds no serious or critical violation on the page.
    pub async fn assert_accessible(&self, page: &str) {
        let violations = self.axe().await;
        assert!(
            violations.is_empty(),
            "{page}: accessibility violations:\n{}",
            violations.join("\n")
        );
    }

    /// Writes the page at each of `WIDTHS` to `.local/screenshots/<name>-<width>.png`
    /// (the whole page's height, up to 5,000 px), then restores 1280 px.
    pub async fn screenshots(&self, name: &str) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".local/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        for width in WIDTHS {
            self.client.set_window_size(width, 900).await.unwrap();
            tokio::time::sleep(Duration::from_millis(150)).await;
            let height = self
                .client
                .execute("return document.documentElement.scrollHeight;", vec![])
                .await
                .unwrap()
                .as_u64()
                .unwrap_or(900)
                .clamp(600, 5000) as u32;
            self.client.set_window_size(width, height).await.unwrap();
            tokio::time::sleep(Duration::from_millis(150)).await;
            let png = self.client.screenshot().await.unwrap();
            std::fs::write(dir.join(format!("{name}-{width}.png")), png).unwrap();
        }
        self.client.set_window_size(1280, 900).await.unwrap();
    }

    /// Axe and screenshots for the page on screen: what every page test does.
    pub async fn check_page(&self, name: &str) {
        self.assert_accessible(name).await;
        self.screenshots(name).await;
    }

    /// Signs in through the login page.
    pub async fn sign_in(&self, email: &str, password: &str) {
        self.goto("/login").await;
        self.fill("#email", email).await;
        self.fill("#password", password).await;
        self.find("form[action='/login'] button[type=submit]")
            .await
            .click()
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.path().await.starts_with("/login") {
            assert!(
                Instant::now() < deadline,
                "sign-in did not leave the login page"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}
