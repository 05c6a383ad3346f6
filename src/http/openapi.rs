//! The OpenAPI 3 document served at `/api/openapi.json`: the paths come from the
//! handlers' annotations as the routers register them; this file adds what is
//! common (title, security schemes, shared schemas). Operation ids follow the
//! product's procedure names.

use std::sync::OnceLock;

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::routes;

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
