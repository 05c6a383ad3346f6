//! `GET /admin/users`: every account with its role, and `POST
//! /admin/users/{id}/role` to change one. The change is the admin API's
//! (`http::admin::set_user_role`): the same self-demotion guard and audit
//! entry.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::{page_number, Pager, PER_PAGE};
use crate::domain::Role;
use crate::http::admin::set_user_role;
use crate::http::caller::Caller;
use crate::http::client::Client;
use crate::http::AppState;
use crate::store::users;
use crate::web::error::WebError;
use crate::web::form::{FieldErrors, PageForm};
use crate::web::layout::{Layout, Notice, Section};
use crate::web::session::Admin;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/users", get(list))
        .route("/admin/users/{id}/role", post(change_role))
}

pub struct UserRow {
    pub id: String,
    pub email: String,
    pub name: String,
    pub is_admin: bool,
    pub verified: bool,
    pub is_you: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/users.html")]
pub struct UsersPage {
    layout: Layout,
    rows: Vec<UserRow>,
    pager: Pager,
    errors: FieldErrors,
}

#[derive(Debug, Default, Deserialize)]
pub struct UsersQuery {
    page: Option<String>,
}

async fn render(
    state: &AppState,
    caller: &Caller,
    layout: Layout,
    page: i64,
    errors: FieldErrors,
) -> Result<UsersPage, WebError> {
    let (accounts, total) =
        users::list_accounts(&state.pool, PER_PAGE, (page - 1) * PER_PAGE).await?;
    let rows = accounts
        .into_iter()
        .map(|a| UserRow {
            id: a.id.to_string(),
            is_you: a.id == caller.user.id,
            is_admin: a.role == Role::Admin,
            verified: a.email_verified_at.is_some(),
            name: a.name.unwrap_or_default(),
            email: a.email,
            created_at: a.created_at,
        })
        .collect();
    Ok(UsersPage {
        layout,
        rows,
        pager: Pager::new("/admin/users", &[], page, total),
        errors,
    })
}

async fn list(
    State(state): State<AppState>,
    Admin(caller): Admin,
    headers: HeaderMap,
    Query(q): Query<UsersQuery>,
) -> Result<UsersPage, WebError> {
    let layout = Layout::member("Users", Section::Admin, &caller).with_notice(&headers);
    let page = page_number(q.page.as_deref());
    render(&state, &caller, layout, page, FieldErrors::new()).await
}

#[derive(Debug, Deserialize)]
pub struct RoleForm {
    role: String,
    page: Option<String>,
}

async fn change_role(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Client(origin): Client,
    Path(raw): Path<String>,
    PageForm(form): PageForm<RoleForm>,
) -> Result<Response, WebError> {
    let id: Uuid = raw.parse().map_err(|_| WebError::NotFound)?;
    let page = page_number(form.page.as_deref());
    let mut errors = FieldErrors::new();
    match set_user_role(&state, &caller, &origin, id, &form.role).await {
        Ok(_) => {
            let back = format!("/admin/users?page={page}");
            return Ok(([Notice::RoleChanged.cookie()], Redirect::to(&back)).into_response());
        }
        Err(e) => errors.absorb(e)?,
    }
    // A refusal (an admin demoting themselves, an unknown role) goes above
    // the table: the row's select has no room for it.
    if errors.form.is_none() {
        errors.form = Some("The role could not be changed: choose admin or member.".into());
    }
    let layout = Layout::member("Users", Section::Admin, &caller);
    let body = render(&state, &caller, layout, page, errors).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, body).into_response())
}
