//! The OpenAPI 3 document served at `/api/openapi.json`: the paths come from the
//! handlers' annotations as the routers register them; this file adds what is
//! common (title, security schemes, shared schemas) and, once the routes are
//! merged, what every operation can answer (`Contract`): the error envelope for
//! malformed, oversized, unauthenticated, rate-limited and failed requests, the
//! operations that need no credentials, and the other media types of the
//! streaming and download operations. A handler's annotation lists only the
//! answers that are its own. Operation ids follow the product's procedure names.

use std::sync::OnceLock;

use axum::Json;
use utoipa::openapi::content::Content;
use utoipa::openapi::header::Header;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Object, ObjectBuilder, Ref, RefOr, Response, Type};
use utoipa::{Modify, OpenApi};
use utoipa_axum::routes;

use super::bounds::{MAX_BODY_BYTES, MAX_HEADER_BYTES, MAX_URI_BYTES};
use super::ApiRouter;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("API key"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("fp_session"))),
        );
        components.add_security_scheme(
            "metricsToken",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("METRICS_TOKEN"))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "fresco-platform", description = "Runs Fresco as a multi-tenant service."),
    modifiers(&Security),
    security(("apiKey" = []), ("session" = [])),
    components(schemas(super::error::ErrorBody, super::extract::PageMeta))
)]
pub struct ApiDoc;

pub fn router() -> ApiRouter {
    ApiRouter::new().routes(routes!(spec))
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", operation_id = "platform.openapi", tag = "platform",
    responses((status = 200, description = "the OpenAPI 3 document", content_type = "application/json")))]
pub async fn spec() -> Json<&'static utoipa::openapi::OpenApi> {
    static DOCUMENT: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    Json(DOCUMENT.get_or_init(super::document))
}

/// Completes the merged document (see the module doc). Runs on the whole
/// document, after every router's paths are in it.
pub fn complete_contract(doc: &mut utoipa::openapi::OpenApi) {
    Contract.modify(doc);
}

/// Operations that take no credentials; every other one needs a session or an
/// API key, except `platform.metrics`, which takes its own token. tests/openapi.rs
/// holds this list to the router: these answer without credentials, the rest 401.
const PUBLIC: &[&str] = &[
    "platform.health",
    "platform.ready",
    "platform.openapi",
    "setup.guard",
    "wizard.checkSubdomain",
    "wizard.createSignupSession",
    "wizard.getSession",
    "wizard.updateSession",
    "wizard.deployTenant",
    "auth.login",
    "auth.passwordStrength",
    "auth.requestPasswordReset",
    "auth.confirmPasswordReset",
    "auth.confirmEmailVerification",
];

/// What an operation answers with status 200 besides what its annotation says.
const OTHER_MEDIA: &[(&str, &[&str])] = &[
    (
        "tenants.getContainerLogs",
        &["text/event-stream", "application/x-ndjson", "text/plain"],
    ),
    ("tenants.streamEvents", &["text/event-stream"]),
    ("tenants.streamMetrics", &["text/event-stream"]),
];

/// The shared error answers: status, name under `components/responses`, when.
fn errors() -> [(&'static str, &'static str, String); 11] {
    let kib = |bytes: usize| bytes / 1024;
    [
        (
            "400",
            "BadRequest",
            "malformed request: the body is not JSON, or a parameter cannot be read".into(),
        ),
        ("401", "Unauthorized", "no valid session or API key".into()),
        (
            "403",
            "Forbidden",
            "not allowed, or a cookie-authenticated change from another origin (`csrf_refused`)"
                .into(),
        ),
        (
            "404",
            "NotFound",
            "no such resource, or not one the caller may see".into(),
        ),
        (
            "413",
            "PayloadTooLarge",
            format!("request body over {} KiB", kib(MAX_BODY_BYTES)),
        ),
        (
            "414",
            "UriTooLong",
            format!("path and query string over {} KiB", kib(MAX_URI_BYTES)),
        ),
        (
            "422",
            "ValidationFailed",
            "a field or parameter breaks a rule (`details` names it)".into(),
        ),
        (
            "429",
            "RateLimited",
            "too many requests; `Retry-After` says when to come back".into(),
        ),
        (
            "431",
            "HeadersTooLarge",
            format!("request headers over {} KiB", kib(MAX_HEADER_BYTES)),
        ),
        (
            "500",
            "Internal",
            "internal error; quote the request id when reporting it".into(),
        ),
        (
            "503",
            "Unavailable",
            "the platform database (for readiness, also Docker) is unreachable; \
             `Retry-After` says when to try again"
                .into(),
        ),
    ]
}

struct Contract;

impl Modify for Contract {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components
            .schemas
            .insert(SSE_EVENT.to_owned(), RefOr::T(sse_event().into()));
        let mut refs = std::collections::BTreeMap::new();
        for (status, name, description) in errors() {
            let retry = matches!(status, "429" | "503");
            components.responses.insert(
                name.to_owned(),
                RefOr::T(error_response(description, retry)),
            );
            refs.insert(status, format!("#/components/responses/{name}"));
        }
        for item in doc.paths.paths.values_mut() {
            let operations = [
                (&mut item.get, false),
                (&mut item.head, false),
                (&mut item.options, false),
                (&mut item.post, true),
                (&mut item.put, true),
                (&mut item.patch, true),
                (&mut item.delete, true),
            ];
            for (operation, writes) in operations {
                if let Some(op) = operation {
                    complete_operation(op, writes, &refs);
                }
            }
        }
    }
}

fn complete_operation(
    op: &mut Operation,
    writes: bool,
    refs: &std::collections::BTreeMap<&str, String>,
) {
    let id = op.operation_id.clone().unwrap_or_default();
    let public = PUBLIC.contains(&id.as_str());
    if public {
        op.security = Some(vec![]);
    } else if id == "platform.metrics" {
        op.security = Some(vec![SecurityRequirement::new(
            "metricsToken",
            Vec::<String>::new(),
        )]);
    }
    for status in error_statuses(op, writes, public) {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::Ref(Ref::new(refs[status].clone())));
    }
    let media = OTHER_MEDIA.iter().find(|(op_id, _)| *op_id == id);
    if let Some((_, media)) = media {
        if let Some(RefOr::T(ok)) = op.responses.responses.get_mut("200") {
            for media_type in *media {
                ok.content
                    .entry((*media_type).to_owned())
                    .or_insert_with(|| media_content(media_type));
            }
        }
    }
}

/// An event stream's schema describes each event (OpenAPI 3.1); the rest are text.
fn media_content(media_type: &str) -> Content {
    if media_type == "text/event-stream" {
        Content::new(Some(Ref::from_schema_name(SSE_EVENT)))
    } else {
        Content::new(Some(Object::with_type(Type::String)))
    }
}

const SSE_EVENT: &str = "ServerSentEvent";

/// One event of a `text/event-stream` answer, as a client reads it.
fn sse_event() -> Object {
    let text = || Object::with_type(Type::String);
    ObjectBuilder::new()
        .description(Some(
            "one Server-Sent Event; `data` is JSON unless the operation says otherwise",
        ))
        .property("event", text())
        .property("id", text())
        .property("data", text())
        .property("retry", Object::with_type(Type::Integer))
        .build()
}

/// The shared errors `op` can answer, by what it takes.
fn error_statuses(op: &Operation, writes: bool, public: bool) -> Vec<&'static str> {
    let params = op.parameters.as_deref().unwrap_or_default();
    let takes = |place: ParameterIn| params.iter().any(|p| p.parameter_in == place);
    let body = op.request_body.is_some();
    let mut statuses = vec![];
    if body || !params.is_empty() {
        statuses.push("400");
    }
    if !public {
        statuses.push("401");
        if writes {
            statuses.push("403");
        }
    }
    if takes(ParameterIn::Path) {
        statuses.push("404");
    }
    // Bounds and limits hold for every request, whatever it asks for.
    statuses.extend(["413", "414"]);
    if body || takes(ParameterIn::Query) {
        statuses.push("422");
    }
    statuses.extend(["429", "431", "500", "503"]);
    statuses
}

fn error_response(description: String, retry_after: bool) -> Response {
    let mut response = utoipa::openapi::ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name("ErrorBody"))),
        );
    if retry_after {
        let mut header = Header::new(Object::with_type(Type::Integer));
        header.description = Some("seconds to wait before asking again".into());
        response = response.header("Retry-After", header);
    }
    response.build()
}
