//! The default middleware stack: request ids, security headers, CORS, OpenAPI, custom layers.

use microframework::axum::http::{HeaderValue, header};
use microframework_testing::TestApp;
use serde_json::Value;

use crate::common::service;

#[tokio::test]
async fn request_ids_are_generated_accepted_and_replaced_when_unsafe() {
    let app = TestApp::spawn(service()).await;
    let res = app.get("/hello").await;
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a UUID is generated: {id}");

    let res = app.client().get(app.url("/hello")).header("x-request-id", "client-abc-123").send().await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "client-abc-123");

    let long = "a".repeat(300);
    let res = app.client().get(app.url("/hello")).header("x-request-id", long.as_str()).send().await.unwrap();
    assert_ne!(res.headers()["x-request-id"].to_str().unwrap(), long);
    // Problem bodies carry the same id.
    let res = app.client().get(app.url("/nope")).header("x-request-id", "trace-me").send().await.unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["request_id"], "trace-me");
}

#[tokio::test]
async fn security_headers_are_set_and_hsts_only_when_configured() {
    let app = TestApp::spawn(service()).await;
    let res = app.get("/hello").await;
    let h = res.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert!(h["content-security-policy"].to_str().unwrap().contains("default-src 'self'"));
    assert!(h.get("referrer-policy").is_some());
    assert!(h.get("strict-transport-security").is_none());

    let app = TestApp::builder(service())
        .yaml("http:\n  security_headers:\n    frame_options: SAMEORIGIN\n    hsts:\n      enabled: true\n      max_age: 1d\n")
        .spawn()
        .await;
    let res = app.get("/nope").await;
    assert_eq!(res.headers()["x-frame-options"], "SAMEORIGIN");
    assert_eq!(res.headers()["strict-transport-security"], "max-age=86400; includeSubDomains");

    let app = TestApp::builder(service()).yaml("http:\n  security_headers:\n    enabled: false\n").spawn().await;
    assert!(app.get("/hello").await.headers().get("x-frame-options").is_none());
}

#[tokio::test]
async fn each_part_of_the_stack_switches_off_alone_and_the_rest_keeps_working() {
    // A custom request-id header is read and echoed instead of `x-request-id`.
    let app = TestApp::builder(service()).yaml("http:\n  request_id:\n    header: x-correlation-id\n").spawn().await;
    let res = app.client().get(app.url("/hello")).header("x-correlation-id", "corr-1").send().await.unwrap();
    assert_eq!(res.headers()["x-correlation-id"], "corr-1");
    assert!(res.headers().get("x-request-id").is_none());

    // Without request ids, spans and metrics: no id anywhere, problem details and security
    // headers as usual, and a panic is still a 500.
    let app = TestApp::builder(service())
        .yaml(
            "http:\n  request_id:\n    enabled: false\n  trace:\n    enabled: false\n  metrics:\n    enabled: false\n",
        )
        .spawn()
        .await;
    let res = app.get("/nope").await;
    assert_eq!(res.status(), 404);
    assert!(res.headers().get("x-request-id").is_none());
    assert_eq!(res.headers()["x-frame-options"], "DENY");
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["instance"], "/nope");
    assert!(body.get("request_id").is_none(), "{body}");
    let res = app.get("/panic").await;
    assert_eq!(res.status(), 500);
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");

    // Without panic catching and security headers, the rest still answers.
    let app = TestApp::builder(service())
        .yaml("http:\n  catch_panic:\n    enabled: false\n  security_headers:\n    enabled: false\n")
        .spawn()
        .await;
    let res = app.get("/hello").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("x-frame-options").is_none());
    assert_eq!(res.headers()["x-request-id"].len(), 36);
}

#[tokio::test]
async fn cors_answers_preflight_for_allowed_origins_only() {
    let app = TestApp::builder(service())
        .yaml("http:\n  cors:\n    enabled: true\n    allowed_origins: [\"https://app.example.com\"]\n")
        .spawn()
        .await;
    let res = app
        .client()
        .request(microframework_testing::reqwest::Method::OPTIONS, app.url("/echo"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    assert_eq!(res.headers()["access-control-allow-origin"], "https://app.example.com");
    let res = app.client().get(app.url("/hello")).header("origin", "https://evil.example.com").send().await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn openapi_document_and_offline_docs_ui() {
    let app = TestApp::spawn(service()).await;
    let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(doc["info"]["title"], "it-service");
    assert_eq!(doc["info"]["version"], "1.2.3");
    assert!(doc["info"].get("license").is_none() && doc["info"].get("contact").is_none(), "{}", doc["info"]);
    assert!(doc["paths"]["/echo"]["post"].is_object());
    assert!(doc["paths"]["/health/ready"]["get"].is_object());
    assert!(doc["components"]["schemas"]["Payload"].is_object());

    let res = app.get("/docs/").await;
    assert_eq!(res.status(), 200);
    // The assets are embedded gzipped (a smaller binary) and sent as such.
    assert_eq!(res.headers()["content-encoding"], "gzip");
    let html = gunzip(&res.bytes().await.unwrap());
    assert!(html.contains("swagger-ui"), "{html}");
    // Every script and stylesheet the page loads is served by the service itself.
    for asset in ["swagger-ui.css", "swagger-ui-bundle.js", "swagger-initializer.js"] {
        let res = app.get(&format!("/docs/{asset}")).await;
        assert_eq!(res.status(), 200, "{asset}");
        let gzipped = res.headers().get("content-encoding").is_some_and(|v| v == "gzip");
        let body = res.bytes().await.unwrap();
        let text = if gzipped { gunzip(&body) } else { String::from_utf8(body.to_vec()).unwrap() };
        assert!(text.len() > 100, "{asset}: {text}");
    }
    assert!(!html.contains("https://"), "no asset comes from the internet");

    let app = TestApp::builder(service()).yaml("http:\n  openapi:\n    enabled: false\n").spawn().await;
    assert_eq!(app.get("/openapi.json").await.status(), 404);
}

fn gunzip(bytes: &[u8]) -> String {
    use std::io::Read as _;
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes).read_to_string(&mut text).expect("a gzipped UTF-8 body");
    text
}

async fn stamp(mut res: microframework::axum::response::Response) -> microframework::axum::response::Response {
    res.headers_mut().insert("x-stamp", HeaderValue::from_static("yes"));
    res
}

#[tokio::test]
async fn services_can_add_any_tower_layer_and_mount_plain_routers() {
    let svc = service().layer(microframework::axum::middleware::map_response(stamp)).router(|_| {
        Ok(microframework::axum::Router::new()
            .route("/extra", microframework::axum::routing::get(|| async { "extra" })))
    });
    let app = TestApp::spawn(svc).await;
    let res = app.get("/extra").await;
    assert_eq!(res.headers()["x-stamp"], "yes");
    assert_eq!(res.text().await.unwrap(), "extra");
    // The layer wraps the service's routes, not the framework endpoints.
    assert!(app.get("/health/live").await.headers().get("x-stamp").is_none());
    let res = app.get("/hello").await;
    assert_eq!(res.headers().get(header::CONTENT_TYPE).unwrap(), "text/plain; charset=utf-8");
}

#[tokio::test]
async fn route_conflicts_are_start_up_errors_not_panics() {
    let svc = service().router(|_| {
        Ok(microframework::axum::Router::new()
            .route("/health/live", microframework::axum::routing::get(|| async { "mine" })))
    });
    let err = TestApp::builder(svc).try_spawn().await.unwrap_err();
    assert!(err.to_string().contains("conflicting routes"), "{err}");
}

mod bounds {
    use std::time::Duration;

    use microframework_testing::TestApp;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use crate::common::service;

    async fn read_all(stream: &mut TcpStream) -> String {
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn connections_over_the_limit_are_refused_with_503() {
        let app = TestApp::builder(service()).set("server.max_connections", "2").spawn().await;
        // Two idle keep-alive connections hold the capacity.
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut s = TcpStream::connect(app.local_addr()).await.unwrap();
            s.write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
            let mut buf = [0u8; 256];
            let n = s.read(&mut buf).await.unwrap();
            assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
            held.push(s);
        }
        let mut third = TcpStream::connect(app.local_addr()).await.unwrap();
        let _ = third.write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n").await;
        let answer = read_all(&mut third).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("retry-after: 1") && answer.contains("\"status\":503"), "{answer}");
        // A closed connection frees its slot.
        drop(held.pop());
        let mut ok = None;
        for _ in 0..50 {
            let res = app.client().get(app.url("/hello")).header("connection", "close").send().await;
            if let Ok(r) = res
                && r.status() == 200
            {
                ok = Some(());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ok.is_some(), "the freed slot is used again");
    }

    #[tokio::test]
    async fn idle_keep_alive_connections_are_closed() {
        let app = TestApp::builder(service()).set("server.keep_alive_timeout", "300ms").spawn().await;
        let mut s = TcpStream::connect(app.local_addr()).await.unwrap();
        s.write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
        // The response, then the server closes the idle connection: read_to_end returns.
        let answer = read_all(&mut s).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let mut probe = [0u8; 1];
        let closed = tokio::time::timeout(Duration::from_secs(5), s.read(&mut probe)).await;
        assert!(matches!(closed, Ok(Ok(0))), "closed by the server: {closed:?}");
        // A client trickling its headers is cut off too.
        let mut slow = TcpStream::connect(app.local_addr()).await.unwrap();
        slow.write_all(b"GET /hello HTTP/1.1\r\n").await.unwrap();
        let answer = read_all(&mut slow).await;
        assert!(!answer.contains("200 OK"), "{answer}");
    }

    /// The SETTINGS the server announces on an HTTP/2 connection (prior knowledge).
    async fn h2_settings(addr: std::net::SocketAddr) -> Vec<(u16, u32)> {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00").await.unwrap();
        loop {
            let mut header = [0u8; 9];
            tcp.read_exact(&mut header).await.unwrap();
            let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
            let mut payload = vec![0u8; len];
            tcp.read_exact(&mut payload).await.unwrap();
            // SETTINGS (type 4) without the ACK flag.
            if header[3] == 4 && header[4] & 1 == 0 {
                return payload
                    .chunks(6)
                    .map(|c| (u16::from_be_bytes([c[0], c[1]]), u32::from_be_bytes([c[2], c[3], c[4], c[5]])))
                    .collect();
            }
        }
    }

    #[tokio::test]
    async fn http2_connections_announce_the_stream_and_header_limits() {
        let app = TestApp::builder(service())
            .set("server.http2_max_concurrent_streams", "7")
            .set("server.max_header_size", "16KiB")
            .spawn()
            .await;
        let settings = tokio::time::timeout(Duration::from_secs(10), h2_settings(app.local_addr())).await.unwrap();
        // SETTINGS_MAX_CONCURRENT_STREAMS (3) and SETTINGS_MAX_HEADER_LIST_SIZE (6).
        assert!(settings.contains(&(3, 7)), "{settings:?}");
        assert!(settings.contains(&(6, 16 * 1024)), "{settings:?}");
    }

    #[tokio::test]
    async fn oversized_headers_get_431() {
        let app = TestApp::builder(service()).set("server.max_header_size", "8KiB").spawn().await;
        let res = app.client().get(app.url("/hello")).header("x-big", "a".repeat(16 * 1024)).send().await.unwrap();
        assert_eq!(res.status(), 431);
        assert_eq!(app.get("/hello").await.status(), 200);
    }
}
