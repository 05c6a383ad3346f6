//! Signing in and out from the pages. The checks are the API's own
//! (`http::auth::session::sign_in`): the same rate limits, audit entries and
//! session cookie.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::header::SET_COOKIE;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::error::{is_local_path, WebError};
use super::form::{FieldErrors, PageForm};
use super::layout::{Layout, Notice, Section};
use super::session::Member;
use crate::http::auth::session::{sign_in, sign_out};
use crate::http::caller::clear_cookie;
use crate::http::client::Client;
use crate::http::AppState;

#[derive(Template, WebTemplate)]
#[template(path = "login.html")]
pub struct LoginPage {
    layout: Layout,
    email: String,
    remember_me: bool,
    next: String,
    errors: FieldErrors,
}

#[derive(Deserialize)]
pub struct Next {
    next: Option<String>,
}

/// Where to go after signing in: the page that asked, if it is on this site.
fn destination(next: Option<&str>) -> String {
    next.filter(|n| is_local_path(n))
        .unwrap_or("/dashboard")
        .to_owned()
}

async fn login_page(member: Option<Member>, headers: HeaderMap, Query(q): Query<Next>) -> Response {
    let next = destination(q.next.as_deref());
    if member.is_some() {
        return Redirect::to(&next).into_response();
    }
    LoginPage {
        layout: Layout::new("Sign in", Section::Account).with_notice(&headers),
        email: String::new(),
        remember_me: false,
        next,
        errors: FieldErrors::new(),
    }
    .into_response()
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    remember_me: Option<String>,
    next: Option<String>,
}

async fn login(
    State(state): State<AppState>,
    Client(origin): Client,
    PageForm(form): PageForm<LoginForm>,
) -> Result<Response, WebError> {
    let remember = form.remember_me.is_some();
    let next = destination(form.next.as_deref());
    let mut errors = FieldErrors::new();
    if form.email.trim().is_empty() {
        errors.add("email", "Enter the email address you signed up with.");
    }
    if form.password.is_empty() {
        errors.add("password", "Enter your password.");
    }
    if errors.is_empty() {
        match sign_in(&state, &origin, &form.email, form.password, remember).await {
            Ok((headers, _, _)) => {
                let mut response = Redirect::to(&next).into_response();
                response.headers_mut().extend(headers);
                return Ok(response);
            }
            Err(e) => errors.absorb(e)?,
        }
    }
    let page = LoginPage {
        layout: Layout::new("Sign in", Section::Account),
        email: form.email,
        remember_me: remember,
        next,
        errors,
    };
    Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

async fn logout(
    State(state): State<AppState>,
    Client(origin): Client,
    Member(caller): Member,
) -> Result<Response, WebError> {
    sign_out(&state, &caller, &origin).await?;
    Ok((
        [(SET_COOKIE, clear_cookie(&state))],
        [Notice::SignedOut.cookie()],
        Redirect::to("/login"),
    )
        .into_response())
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
}
