//! The axum extractors (feature `axum`).

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use microframework_auth::{AuthError, AuthRejection, Claims, JwtVerifier, bearer_token, require_role};
use tower::ServiceExt;

use crate::support::*;

async fn me(claims: Claims) -> String {
    claims.subject().unwrap_or("?").to_owned()
}

async fn maybe(claims: Option<Claims>) -> String {
    claims.and_then(|c| c.sub).unwrap_or_else(|| "anonymous".to_owned())
}

async fn admin(claims: Claims) -> Result<&'static str, AuthRejection> {
    require_role(&claims, "admin")?;
    Ok("welcome")
}

fn app() -> Router {
    Router::new().route("/me", get(me)).route("/maybe", get(maybe)).route("/admin", get(admin))
}

fn user(roles: &[&str]) -> Claims {
    Claims { sub: Some("user-1".into()), roles: roles.iter().map(|r| (*r).to_owned()).collect(), ..Claims::default() }
}

async fn call(app: Router, uri: &str, auth: Option<&str>) -> Response {
    let mut req = Request::builder().uri(uri);
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap()
}

async fn body_json(resp: Response) -> serde_json::Value {
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn body_text(resp: Response) -> String {
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn missing_claims_give_401_problem_with_challenge() {
    let resp = call(app(), "/me", None).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/problem+json");
    assert_eq!(resp.headers()[header::WWW_AUTHENTICATE], "Bearer");
    let body = body_json(resp).await;
    assert_eq!(body["status"], 401);
    assert_eq!(body["code"], "unauthenticated");
    assert_eq!(body["title"], "Unauthorized");
}

#[tokio::test]
async fn claims_in_extensions_are_extracted() {
    let resp = call(app().layer(axum::Extension(user(&[]))), "/me", None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body_text(resp).await, "user-1");
}

#[tokio::test]
async fn optional_claims() {
    let resp = call(app(), "/maybe", None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body_text(resp).await, "anonymous");
    let resp = call(app().layer(axum::Extension(user(&[]))), "/maybe", None).await;
    assert_eq!(body_text(resp).await, "user-1");
}

#[tokio::test]
async fn missing_role_gives_403_problem() {
    let resp = call(app().layer(axum::Extension(user(&["reader"]))), "/admin", None).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/problem+json");
    assert!(resp.headers().get(header::WWW_AUTHENTICATE).is_none());
    let body = body_json(resp).await;
    assert_eq!(body["code"], "permission_denied");
    assert!(body["detail"].as_str().unwrap().contains("admin"));

    let resp = call(app().layer(axum::Extension(user(&["admin"]))), "/admin", None).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn rejections_from_auth_errors() {
    let resp = AuthRejection::from(AuthError::Expired).into_response();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        resp.headers()[header::WWW_AUTHENTICATE],
        r#"Bearer error="invalid_token", error_description="the token has expired""#
    );
    let resp = AuthRejection::from(AuthError::KeysUnavailable("down".into())).into_response();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().get(header::WWW_AUTHENTICATE).is_none());
    let body = body_json(resp).await;
    assert_eq!(body["code"], "unavailable");
}

/// What the HTTP layer does: verify the bearer token and store the claims.
async fn authenticate(State(verifier): State<JwtVerifier>, mut req: Request, next: Next) -> Response {
    let Some(value) = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return next.run(req).await;
    };
    let claims = match bearer_token(value) {
        Ok(token) => verifier.verify(token).await,
        Err(e) => Err(e),
    };
    match claims {
        Ok(claims) => {
            req.extensions_mut().insert(claims);
            next.run(req).await
        }
        Err(e) => AuthRejection::from(e).into_response(),
    }
}

#[tokio::test]
async fn end_to_end_with_a_verifier_middleware() {
    let verifier = JwtVerifier::from_config(&hs_config()).await.unwrap();
    let app = || app().layer(middleware::from_fn_with_state(verifier.clone(), authenticate));
    let token = hs_signer().sign(&claims()).unwrap();

    let resp = call(app(), "/me", Some(&format!("Bearer {token}"))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body_text(resp).await, "user-1");

    let resp = call(app(), "/maybe", None).await;
    assert_eq!(body_text(resp).await, "anonymous");

    let resp = call(app(), "/me", Some("Bearer not.a.jwt")).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenge = resp.headers()[header::WWW_AUTHENTICATE].to_str().unwrap().to_owned();
    assert!(challenge.starts_with(r#"Bearer error="invalid_token""#), "{challenge}");

    let resp = call(app(), "/admin", Some(&format!("Bearer {token}"))).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}
