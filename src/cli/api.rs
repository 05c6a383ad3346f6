//! Where the API address and key come from (flag, then environment, then the config
//! file), the HTTP client that carries the key, and turning `<subdomain|id>` into a
//! tenant id.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

use super::failure::{cause, out, ApiFailure, Failure};
use super::ClientOptions;

const DEFAULT_URL: &str = "http://127.0.0.1:8080";
/// Relative to the home directory.
const DEFAULT_CONFIG: &str = ".config/fresco-platform/cli.conf";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// For every request except a followed log stream, which has no time limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The API's largest page.
pub(super) const PER_PAGE: u64 = 100;

#[derive(Debug, Default, PartialEq)]
struct FileSettings {
    url: Option<String>,
    api_key: Option<String>,
}

/// The platform's API, reached with the key.
pub(super) struct Api {
    base: String,
    key: String,
    http: reqwest::Client,
    /// `--json`: print the API's answers as they are.
    pub(super) json: bool,
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

impl ClientOptions {
    pub(super) fn connect(&self) -> Result<Api, Failure> {
        let mut url = non_empty(&self.url);
        let mut key = non_empty(&self.api_key);
        let config = self.config_path();
        if url.is_none() || key.is_none() {
            if let Some((path, explicit)) = &config {
                let file = read_config(path, *explicit)?;
                url = url.or(file.url);
                key = key.or(file.api_key);
            }
        }
        let key = key.ok_or_else(|| {
            let file = match &config {
                Some((path, _)) => format!(" or put `api_key = …` in {}", path.display()),
                None => String::new(),
            };
            Failure::Usage(format!(
                "no API key: set FRESCO_API_KEY, pass --fresco-api-key{file}"
            ))
        })?;
        let base = base_url(url.as_deref().unwrap_or(DEFAULT_URL))?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("fresco-platform-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::Failed(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Api {
            base,
            key,
            http,
            json: self.json,
        })
    }

    /// The config file and whether it was asked for (a missing default file is fine).
    fn config_path(&self) -> Option<(PathBuf, bool)> {
        match &self.config {
            Some(path) => Some((path.clone(), true)),
            None => std::env::var_os("HOME")
                .filter(|home| !home.is_empty())
                .map(|home| (Path::new(&home).join(DEFAULT_CONFIG), false)),
        }
    }
}

fn base_url(url: &str) -> Result<String, Failure> {
    let trimmed = url.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(trimmed).map_err(|e| {
        Failure::Usage(format!(
            "the platform URL {trimmed:?} is not a URL ({e}); expected e.g. {DEFAULT_URL}"
        ))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(Failure::Usage(format!(
            "the platform URL {trimmed:?} must be http:// or https:// with a host"
        )));
    }
    Ok(trimmed.to_owned())
}

fn read_config(path: &Path, explicit: bool) -> Result<FileSettings, Failure> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            return Ok(FileSettings::default())
        }
        Err(e) => {
            return Err(Failure::Usage(format!(
                "cannot read the config file {}: {e}",
                path.display()
            )))
        }
    };
    let settings = parse_config(&text, path)?;
    if settings.api_key.is_some() {
        warn_if_shared(path);
    }
    Ok(settings)
}

fn parse_config(text: &str, path: &Path) -> Result<FileSettings, Failure> {
    let mut settings = FileSettings::default();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // The line itself is never echoed: it may hold the key.
        let Some((name, value)) = line.split_once('=') else {
            return Err(Failure::Usage(format!(
                "{}:{}: expected `name = value`",
                path.display(),
                n + 1
            )));
        };
        let value = unquote(value.trim()).to_owned();
        let value = (!value.is_empty()).then_some(value);
        match name.trim() {
            "url" => settings.url = value,
            "api_key" => settings.api_key = value,
            other => eprintln!(
                "warning: {}:{}: unknown setting `{other}` ignored (known: url, api_key)",
                path.display(),
                n + 1
            ),
        }
    }
    Ok(settings)
}

fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|v| v.strip_suffix(quote))
        {
            return inner;
        }
    }
    value
}

#[cfg(unix)]
fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o044 != 0 {
            eprintln!(
                "warning: {} holds an API key and other users can read it; run `chmod 600 {}`",
                path.display(),
                path.display()
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_path: &Path) {}

impl Api {
    pub(super) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key)
    }

    pub(super) fn unreachable(&self, e: &reqwest::Error) -> Failure {
        Failure::Failed(format!(
            "cannot reach the platform at {}: {}",
            self.base,
            cause(e)
        ))
    }

    /// Sends with the usual time limit; a non-2xx answer becomes a `Failure::Api`.
    async fn send(&self, request: RequestBuilder) -> Result<Response, Failure> {
        let resp = request
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(Failure::Api(ApiFailure::from_response(resp).await))
        }
    }

    /// The answer's text (as sent, for `--json`) and its parsed value.
    pub(super) async fn call(&self, request: RequestBuilder) -> Result<(String, Value), Failure> {
        let resp = self.send(request).await?;
        let text = resp.text().await.map_err(|e| {
            Failure::Failed(format!("the platform's answer broke off: {}", cause(&e)))
        })?;
        let value = serde_json::from_str(&text)
            .map_err(|e| Failure::Failed(format!("the platform's answer is not JSON ({e})")))?;
        Ok((text, value))
    }

    pub(super) async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<(String, Value), Failure> {
        self.call(self.request(Method::GET, path).query(query))
            .await
    }

    /// Prints the answer as is under `--json`.
    pub(super) fn print_raw(&self, text: &str) -> Result<(), Failure> {
        out(text.trim_end())
    }
}

// ---------------------------------------------------------------------------
// Tenant references

/// A tenant the user named, by subdomain or id.
pub(super) struct TenantRef {
    id: String,
    /// Known when the user gave a subdomain.
    subdomain: Option<String>,
}

impl TenantRef {
    pub(super) fn name(&self) -> &str {
        self.subdomain.as_deref().unwrap_or(&self.id)
    }

    pub(super) fn path(&self, rest: &str) -> String {
        format!("/api/v1/tenants/{}{rest}", self.id)
    }
}

/// A UUID is used as is; anything else is a subdomain looked up through the list.
pub(super) async fn resolve(api: &Api, reference: &str) -> Result<TenantRef, Failure> {
    let reference = reference.trim();
    if reference.is_empty() {
        return Err(Failure::Usage(
            "no tenant given: name it by its subdomain or its id".to_owned(),
        ));
    }
    if let Ok(id) = uuid::Uuid::parse_str(reference) {
        return Ok(TenantRef {
            id: id.to_string(),
            subdomain: None,
        });
    }
    let mut matches = Vec::new();
    for page in 1.. {
        let (_, body) = api
            .get(
                "/api/v1/tenants",
                &[
                    ("search", reference.to_owned()),
                    ("perPage", PER_PAGE.to_string()),
                    ("page", page.to_string()),
                ],
            )
            .await?;
        let items = list_items(&body)?;
        matches.extend(
            items
                .iter()
                .filter(|t| t["subdomain"].as_str() == Some(reference))
                .cloned(),
        );
        if items.is_empty() || page * PER_PAGE >= body["meta"]["total"].as_u64().unwrap_or(0) {
            break;
        }
    }
    // A destroyed tenant keeps its row and frees its subdomain, so a live tenant and
    // destroyed ones may share it: the live one is meant, else the latest destroyed.
    matches.sort_by_key(|t| {
        (
            t["status"].as_str() != Some("destroyed"),
            t["createdAt"].as_str().unwrap_or_default().to_owned(),
        )
    });
    match matches.last().and_then(|t| t["id"].as_str()) {
        Some(id) => Ok(TenantRef {
            id: id.to_owned(),
            subdomain: Some(reference.to_owned()),
        }),
        None => Err(Failure::Failed(format!(
            "no tenant with subdomain {reference}"
        ))),
    }
}

pub(super) fn list_items(body: &Value) -> Result<&Vec<Value>, Failure> {
    body["data"].as_array().ok_or_else(|| {
        Failure::Failed("unexpected answer from the platform: no `data` list".to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_lines_and_errors_never_echo_values() {
        let path = Path::new("cli.conf");
        let parsed = parse_config(
            "# mine\nurl = https://fp.example.org/\n\napi_key = \"fp_secret\"\n",
            path,
        )
        .unwrap();
        assert_eq!(
            parsed,
            FileSettings {
                url: Some("https://fp.example.org/".to_owned()),
                api_key: Some("fp_secret".to_owned()),
            }
        );
        match parse_config("fp_secret_without_a_name\n", path) {
            Err(Failure::Usage(message)) => assert!(!message.contains("fp_secret")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn base_url_must_be_http() {
        assert_eq!(
            base_url("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert!(matches!(base_url("127.0.0.1:8080"), Err(Failure::Usage(_))));
        assert!(matches!(base_url("ftp://x"), Err(Failure::Usage(_))));
    }
}
