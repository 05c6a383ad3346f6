//! The OpenAPI 3 document, generated from the handlers' annotations and served
//! at `/api/openapi.json`. Operation ids follow the product's procedure names.

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    account, admin, api_keys, events, health, logs, metrics, observe, tenants, wizard, ApiRouter,
};

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
    paths(
        health::health, health::ready, spec,
        account::login, account::logout, account::me, account::update_me, account::change_password,
        account::password_strength, account::request_reset, account::confirm_reset,
        account::request_verification, account::confirm_verification,
        api_keys::list, api_keys::create, api_keys::revoke,
        wizard::check_subdomain, wizard::create_session, wizard::get_session, wizard::update_session, wizard::deploy,
        tenants::create, tenants::list, tenants::show, tenants::destroy, tenants::start, tenants::stop,
        tenants::restart, tenants::retry, tenants::deployments_list, tenants::deployment_status,
        logs::logs, events::events, metrics::get_metrics, metrics::stream_metrics, observe::prometheus,
        admin::orphans, admin::list_users, admin::change_role, admin::audit_log,
    ),
    components(schemas(super::error::ErrorBody, super::extract::PageMeta))
)]
pub struct ApiDoc;

pub fn router() -> ApiRouter {
    ApiRouter::new().get("/api/openapi.json", spec)
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", operation_id = "platform.openapi", tag = "platform",
    responses((status = 200, description = "the OpenAPI 3 document", content_type = "application/json")))]
pub async fn spec() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
