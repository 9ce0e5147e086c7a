//! The GraphiQL IDE, vendored and embedded: served from the same origin, without inline scripts,
//! so that it works offline and under the default Content-Security-Policy.
//!
//! GraphiQL 3.9.0 (its UMD build; 4.x and later ship ES modules only) with React 18.3.1 (the
//! last React with UMD builds). See `assets/README.md` for provenance, sizes and licenses, and
//! `assets/vendor.sh` to regenerate them.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The GraphiQL version served.
pub const GRAPHIQL_VERSION: &str = "3.9.0";
/// The React version served.
pub const REACT_VERSION: &str = "18.3.1";

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Asset {
    pub(crate) name: &'static str,
    pub(crate) content_type: &'static str,
    pub(crate) bytes: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Styles of the page itself (kept out of the HTML like the scripts).
const PAGE_CSS: &str = "html, body { height: 100%; margin: 0; overflow: hidden; }\n#graphiql { height: 100vh; }\n";

/// Every file served under `{path}/assets/`.
pub(crate) const ASSETS: &[Asset] = &[
    Asset {
        name: "react.production.min.js",
        content_type: JS,
        bytes: include_bytes!("../assets/react.production.min.js"),
    },
    Asset {
        name: "react-dom.production.min.js",
        content_type: JS,
        bytes: include_bytes!("../assets/react-dom.production.min.js"),
    },
    Asset { name: "graphiql.min.js", content_type: JS, bytes: include_bytes!("../assets/graphiql.min.js") },
    Asset { name: "graphiql.min.css", content_type: CSS, bytes: include_bytes!("../assets/graphiql.min.css") },
    Asset { name: "graphiql-init.js", content_type: JS, bytes: include_bytes!("../assets/graphiql-init.js") },
    Asset { name: "graphiql-page.css", content_type: CSS, bytes: PAGE_CSS.as_bytes() },
    Asset {
        name: "roboto-normal-400-latin.woff2",
        content_type: "font/woff2",
        bytes: include_bytes!("../assets/roboto-normal-400-latin.woff2"),
    },
    Asset {
        name: "roboto-normal-500-latin.woff2",
        content_type: "font/woff2",
        bytes: include_bytes!("../assets/roboto-normal-500-latin.woff2"),
    },
    Asset {
        name: "roboto-italic-400-latin.woff2",
        content_type: "font/woff2",
        bytes: include_bytes!("../assets/roboto-italic-400-latin.woff2"),
    },
    Asset {
        name: "roboto-italic-500-latin.woff2",
        content_type: "font/woff2",
        bytes: include_bytes!("../assets/roboto-italic-500-latin.woff2"),
    },
    Asset {
        name: "fira-code-normal-400-latin.woff",
        content_type: "font/woff",
        bytes: include_bytes!("../assets/fira-code-normal-400-latin.woff"),
    },
];

/// The total size of the embedded assets, in bytes.
pub fn embedded_size() -> usize {
    ASSETS.iter().map(|a| a.bytes.len()).sum()
}

pub(crate) fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// Serves an asset with a day of caching (the names change when the vendored versions do).
pub(crate) fn response(asset: &Asset) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400")),
        ],
        asset.bytes,
    )
        .into_response()
}

/// The 404 of an unknown asset name.
pub(crate) fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

fn escape_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The GraphiQL page: every script and style sheet comes from `{assets}/` on the same origin, and
/// there is no inline script; the endpoints are passed as data attributes.
pub(crate) fn page(endpoint: &str, ws_endpoint: Option<&str>, assets: &str) -> String {
    let a = escape_attr(assets);
    let v = GRAPHIQL_VERSION;
    let ws = ws_endpoint.map(|p| format!(" data-subscription-endpoint=\"{}\"", escape_attr(p))).unwrap_or_default();
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>GraphiQL</title>
<link rel="stylesheet" href="{a}/graphiql.min.css?v={v}">
<link rel="stylesheet" href="{a}/graphiql-page.css?v={v}">
</head>
<body>
<div id="graphiql" data-endpoint="{endpoint}"{ws}>Loading GraphiQL&hellip;</div>
<script src="{a}/react.production.min.js?v={react}"></script>
<script src="{a}/react-dom.production.min.js?v={react}"></script>
<script src="{a}/graphiql.min.js?v={v}"></script>
<script src="{a}/graphiql-init.js?v={v}"></script>
</body>
</html>
"#,
        endpoint = escape_attr(endpoint),
        react = REACT_VERSION,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_references_same_origin_assets_only() {
        let html = page("/graphql", Some("/graphql/ws"), "/graphql/assets");
        for attr in ["src=\"", "href=\""] {
            for rest in html.split(attr).skip(1) {
                let url = &rest[..rest.find('"').unwrap()];
                assert!(url.starts_with("/graphql/assets/"), "{url}");
                let name = url.trim_start_matches("/graphql/assets/").split('?').next().unwrap();
                assert!(find(name).is_some(), "{name} is not embedded");
            }
        }
        assert!(!html.contains("<script>"), "no inline script");
        assert!(html.contains("data-subscription-endpoint=\"/graphql/ws\""));
        assert!(!page("/g", None, "/g/assets").contains("data-subscription-endpoint"));
    }

    #[test]
    fn attributes_are_escaped() {
        assert_eq!(escape_attr(r#"a"<b>&'"#), "a&quot;&lt;b&gt;&amp;&#39;");
    }

    #[test]
    fn css_fonts_are_embedded() {
        let css = std::str::from_utf8(find("graphiql.min.css").unwrap().bytes).unwrap();
        assert!(!css.contains("url(data:font"));
        for font in ASSETS.iter().filter(|a| a.content_type.starts_with("font/")) {
            assert!(css.contains(&format!("url({})", font.name)), "{}", font.name);
        }
        assert!(embedded_size() < 1_400_000, "{}", embedded_size());
    }
}
