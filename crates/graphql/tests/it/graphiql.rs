//! The GraphiQL IDE, served from embedded assets on the same origin.

use crate::common::spawn;

fn urls(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for rest in html.split(attr).skip(1) {
            out.push(rest[..rest.find('"').unwrap()].to_owned());
        }
    }
    out
}

#[tokio::test]
async fn graphiql_is_served_with_same_origin_assets_only() {
    let (app, _lib) = spawn("").await;
    let res = app
        .client()
        .get(app.url("/graphql"))
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
    let csp = res.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("default-src 'self'"), "the default CSP applies: {csp}");
    let html = res.text().await.unwrap();
    assert!(!html.contains("<script>"), "no inline script: {html}");
    assert!(!html.contains("//"), "no absolute or protocol-relative URL: {html}");
    assert!(html.contains("data-endpoint=\"/graphql\"") && html.contains("data-subscription-endpoint=\"/graphql/ws\""));

    let urls = urls(&html);
    assert_eq!(urls.len(), 6, "{urls:?}");
    let mut total = 0;
    let mut css = String::new();
    for url in &urls {
        assert!(url.starts_with("/graphql/assets/"), "{url}");
        let res = app.get(url).await;
        assert_eq!(res.status(), 200, "{url}");
        let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
        let expected = if url.contains(".css") { "text/css; charset=utf-8" } else { "text/javascript; charset=utf-8" };
        assert_eq!(ct, expected, "{url}");
        let body = res.bytes().await.unwrap();
        assert!(!body.is_empty());
        total += body.len();
        if url.contains("graphiql.min.css") {
            css = String::from_utf8(body.to_vec()).unwrap();
        }
    }
    assert!(total > 1_000_000, "GraphiQL, React and ReactDOM are served ({total} bytes)");

    // The fonts of the style sheet are served as files, not data: URLs the CSP would block.
    assert!(!css.contains("url(data:font"));
    let fonts: Vec<&str> =
        css.split("url(").skip(1).map(|r| &r[..r.find(')').unwrap()]).filter(|u| u.contains(".woff")).collect();
    assert_eq!(fonts.len(), 5, "{fonts:?}");
    for font in fonts {
        let res = app.get(&format!("/graphql/assets/{font}")).await;
        assert_eq!(res.status(), 200, "{font}");
        let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct == "font/woff2" || ct == "font/woff", "{ct}");
    }
    assert_eq!(app.get("/graphql/assets/nope.js").await.status(), 404);
    assert_eq!(app.get("/graphql/assets/..%2Fsecret").await.status(), 404);

    // API clients asking for JSON still get GraphQL, not the page.
    let res = app
        .client()
        .get(app.url("/graphql?query=%7Bbooks%7Bid%7D%7D"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "application/json");
}

#[tokio::test]
async fn graphiql_can_be_switched_off() {
    let (app, _lib) = spawn("graphql:\n  graphiql: false\n").await;
    let res = app.client().get(app.url("/graphql")).header("accept", "text/html").send().await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(app.get("/graphql/assets/graphiql.min.js").await.status(), 404);
}
