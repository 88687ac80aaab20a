//! Signing in and out.

use super::*;

/// A `next` target that stays on this site's desk.
pub(super) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/app") && !n.starts_with("//") && !n.contains('\\') => {
            n.to_owned()
        }
        _ => "/app".to_owned(),
    }
}

// ---------------------------------------------------------------------------------------
// Login, logout, static files

/// `GET /app/login`.
pub async fn login_page(
    State(state): State<HttpState>,
    request: DeskRequest,
    RawQuery(query): RawQuery,
) -> Response {
    let desk = try_page!(desk(&state));
    let query = FormData::parse(query.unwrap_or_default().as_bytes()).unwrap_or_default();
    login_form(
        &state,
        &desk,
        &request,
        StatusCode::OK,
        &safe_next(query.get("next")),
        "",
        "",
    )
}

pub(super) fn login_form(
    state: &HttpState,
    desk: &Desk,
    request: &DeskRequest,
    status: StatusCode,
    next: &str,
    email: &str,
    error: &str,
) -> Response {
    // The login form needs a CSRF token before there is a session (bound to the old
    // session when the browser still has one, as the form's check will expect).
    let csrf = request.expected_csrf(desk).unwrap_or_else(random_token);
    let fresh =
        super::super::cookie_value(&request.headers, CSRF_COOKIE).as_deref() != Some(csrf.as_str());
    let context = json!({
        "app_name": state.config.app.name,
        "csrf": csrf,
        "next": next,
        "email": email,
        "tenant": request.tenant_hint(),
        "error": (!error.is_empty()).then_some(error),
    });
    let mut response = desk.render(request.tenant_hint(), status, "login.html", &context);
    if fresh
        && let Ok(value) = HeaderValue::from_str(&desk.cookie(CSRF_COOKIE, &csrf, 30 * 24 * 3600))
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `POST /app/login`: signs in through `POST /api/v1/auth/login`.
pub async fn login(State(state): State<HttpState>, request: DeskRequest, body: Bytes) -> Response {
    let desk = try_page!(desk(&state));
    let form = FormData::parse(&body).unwrap_or_default();
    try_page!(request.check_form(&desk, &form));
    let next = safe_next(form.get("next"));
    let email = form.get("email").unwrap_or("").trim().to_owned();
    let password = form.get("password").unwrap_or("");
    let tenant = match request.tenant_hint() {
        Some(t) => t.to_owned(),
        None => form.get("tenant").unwrap_or("").trim().to_ascii_lowercase(),
    };
    if tenant.is_empty() || email.is_empty() || password.is_empty() {
        return login_form(
            &state,
            &desk,
            &request,
            StatusCode::UNPROCESSABLE_ENTITY,
            &next,
            &email,
            "Enter your organisation, email and password.",
        );
    }
    let answer = request
        .call_anonymous(
            &state,
            Method::POST,
            "/api/v1/auth/login",
            request.tenant_hint().is_none().then_some(tenant.as_str()),
            Some(&json!({ "email": email, "password": password })),
        )
        .await;
    let (Some(access), Some(refresh)) = (
        answer.body.get("access_token").and_then(Value::as_str),
        answer.body.get("refresh_token").and_then(Value::as_str),
    ) else {
        let message = if answer.status == StatusCode::TOO_MANY_REQUESTS {
            answer.message()
        } else if answer.status.is_client_error() {
            "The email or password is wrong, or the account is locked for a while.".to_owned()
        } else {
            answer.message()
        };
        return login_form(
            &state,
            &desk,
            &request,
            if answer.status.is_success() {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                answer.status
            },
            &next,
            &email,
            &message,
        );
    };
    let refresh_s = answer
        .body
        .get("refresh_expires_in")
        .and_then(Value::as_i64)
        .unwrap_or(3600);
    let mut response = Redirect::to(&next).into_response();
    for cookie in [
        desk.cookie(SESSION_COOKIE, access, refresh_s),
        desk.cookie(REFRESH_COOKIE, refresh, refresh_s),
        desk.cookie(USER_COOKIE, &url_encode(&email), refresh_s),
        // The new session's CSRF token; the login form's is spent.
        desk.cookie(CSRF_COOKIE, &desk.csrf_token(refresh), refresh_s),
    ] {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// `POST /app/logout`: revokes the refresh token's family and clears the cookies.
pub async fn logout(State(state): State<HttpState>, request: DeskRequest, body: Bytes) -> Response {
    let desk = try_page!(desk(&state));
    let form = FormData::parse(&body).unwrap_or_default();
    try_page!(request.check_form(&desk, &form));
    if let Some(refresh) = super::super::cookie_value(&request.headers, REFRESH_COOKIE) {
        let _ = request
            .call_anonymous(
                &state,
                Method::POST,
                "/api/v1/auth/logout",
                None,
                Some(&json!({ "refresh_token": refresh })),
            )
            .await;
    }
    let mut response = Redirect::to("/app/login").into_response();
    for name in [SESSION_COOKIE, REFRESH_COOKIE, USER_COOKIE] {
        if let Ok(value) = HeaderValue::from_str(&desk.cookie(name, "", 0)) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}
