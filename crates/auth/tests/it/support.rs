//! Shared helpers: fixtures, token building, a local JWKS server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};
use microframework_auth::{JwtConfig, JwtSigner};
use serde_json::{Value, json};

pub const SECRET: &str = "test-secret-0123456789-abcdefghij-klmnop";

pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

pub fn fixture_str(name: &str) -> String {
    String::from_utf8(fixture(name)).unwrap()
}

pub fn fixture_path(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Claims valid for an hour.
pub fn claims() -> Value {
    json!({"sub": "user-1", "aud": AUDIENCE, "exp": now() + 3600, "iat": now()})
}

/// Claims merged with `extra` (null values remove the claim).
pub fn claims_with(extra: Value) -> Value {
    let mut c = claims();
    let obj = c.as_object_mut().unwrap();
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            obj.remove(k);
        } else {
            obj.insert(k.clone(), v.clone());
        }
    }
    c
}

pub fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

pub fn hs_signer() -> JwtSigner {
    JwtSigner::hs256(SECRET.as_bytes())
}

pub fn rsa_signer() -> JwtSigner {
    JwtSigner::from_pem("RS256", &fixture("rsa_private.pem")).unwrap()
}

pub fn rsa2_signer() -> JwtSigner {
    JwtSigner::from_pem("RS256", &fixture("rsa2_private.pem")).unwrap()
}

pub fn ec_signer() -> JwtSigner {
    JwtSigner::from_pem("ES256", &fixture("ec_private.pem")).unwrap()
}

pub fn hs_config() -> JwtConfig {
    JwtConfig { secret: Some(SECRET.into()), ..JwtConfig::default() }
}

/// The audience of the test tokens, required with shared keys (`public_key`, `jwks_url`).
pub const AUDIENCE: &str = "test-api";

pub fn public_key_config(file: &str) -> JwtConfig {
    JwtConfig { public_key: Some(fixture_str(file)), audience: vec![AUDIENCE.into()], ..JwtConfig::default() }
}

pub fn jwks_config(url: &str) -> JwtConfig {
    JwtConfig {
        jwks_url: Some(url.to_owned()),
        audience: vec![AUDIENCE.into()],
        jwks_timeout: std::time::Duration::from_secs(2),
        ..JwtConfig::default()
    }
}

/// A JWK (as JSON) for a public key fixture, with `kid` and optional `alg`.
pub fn jwk(public_pem_file: &str, kid: &str, alg: Option<Algorithm>) -> Value {
    let pem = fixture(public_pem_file);
    let key = DecodingKey::from_rsa_pem(&pem)
        .or_else(|_| DecodingKey::from_ec_pem(&pem))
        .or_else(|_| DecodingKey::from_ed_pem(&pem))
        .unwrap();
    let mut jwk = Jwk::from_decoding_key(&key, alg).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    serde_json::to_value(jwk).unwrap()
}

pub fn jwks(keys: Vec<Value>) -> Value {
    json!({ "keys": keys })
}

/// Signs an arbitrary `header.payload` with HMAC-SHA256 and `key`.
pub fn hs256_raw(header: &str, payload: &str, key: &[u8]) -> String {
    let message = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let sig =
        jsonwebtoken::crypto::sign(message.as_bytes(), &jsonwebtoken::EncodingKey::from_secret(key), Algorithm::HS256)
            .unwrap();
    format!("{message}.{sig}")
}

/// The state of a [`JwksServer`].
pub struct JwksState {
    pub body: Mutex<Value>,
    pub hits: AtomicUsize,
    pub up: AtomicBool,
}

/// A JWKS endpoint on 127.0.0.1 that counts requests.
pub struct JwksServer {
    pub state: Arc<JwksState>,
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    pub async fn start(body: Value) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(listener, body)
    }

    pub fn start_on(listener: tokio::net::TcpListener, body: Value) -> Self {
        let addr = listener.local_addr().unwrap();
        let state =
            Arc::new(JwksState { body: Mutex::new(body), hits: AtomicUsize::new(0), up: AtomicBool::new(true) });
        let app = axum::Router::new().route("/jwks", get(serve_jwks)).with_state(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { state, addr, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }

    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    pub fn set(&self, body: Value) {
        *self.state.body.lock().unwrap() = body;
    }

    pub fn set_up(&self, up: bool) {
        self.state.up.store(up, Ordering::SeqCst);
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_jwks(State(state): State<Arc<JwksState>>) -> axum::response::Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    if !state.up.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
    }
    let body = state.body.lock().unwrap().clone();
    axum::Json(body).into_response()
}
