//! The web page of `colm serve` at `/`: ask a hosted model or a strategy and watch the
//! collaboration fill in live (the streamed progress reports of docs/api.md), compare client,
//! server and collaboration side by side, give feedback, read this tenant's records and their
//! transcripts. Three files under `crates/colm-server/ui/`, compiled into the binary: nothing is
//! fetched from elsewhere at run time. Plain HTML, CSS and JavaScript (no framework: the page is
//! one form, three views and a stream reader, which a library would not shorten).
//!
//! The page calls the same `/v1` API as any client, with the API key the user types (kept in
//! the tab's session storage, sent as `Authorization: Bearer`, never in a URL). Its responses
//! forbid framing and any script, style or connection from another origin
//! (`Content-Security-Policy`).

use axum::http::header;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("../ui/index.html");
const SCRIPT: &str = include_str!("../ui/app.js");
const STYLE: &str = include_str!("../ui/app.css");

/// What the page may load: its own files and its own API, nothing else, and no framing.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; \
    frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
}

/// `GET /` (the page), `GET /ui/app.js`, `GET /ui/app.css`; `GET /ui` redirects to the page
/// and `GET /docs` to the OpenAPI document (the addresses llama-server's and FastAPI's users try).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/") }))
        .route(
            "/docs",
            get(|| async { Redirect::permanent("/openapi.json") }),
        )
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/ui/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/ui/app.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
}

#[cfg(test)]
mod tests {
    use crate::{router, AppState, ServerConfig};

    /// The page and its two files are served from the binary with their types and a policy
    /// that lets them load nothing from elsewhere; the page names both files.
    #[tokio::test]
    async fn the_page_and_its_files_are_served_with_a_strict_policy() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(AppState::new([], ServerConfig::default()));
        tokio::spawn(async move { axum::serve(listener, app).await });
        for (path, kind, holds) in [
            ("/", "text/html", "/ui/app.js"),
            ("/ui/app.js", "text/javascript", "colmTimings"),
            ("/ui/app.css", "text/css", ".columns"),
        ] {
            let r = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
            assert_eq!(r.status(), 200, "{path}");
            let h = r.headers().clone();
            assert!(h["content-type"].to_str().unwrap().starts_with(kind));
            let policy = h["content-security-policy"].to_str().unwrap();
            assert!(policy.contains("default-src 'none'") && policy.contains("connect-src 'self'"));
            assert!(r.text().await.unwrap().contains(holds), "{path}");
        }
        // /ui and /docs lead somewhere rather than to a 404.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        for (path, to) in [("/ui", "/"), ("/docs", "/openapi.json")] {
            let r = client
                .get(format!("http://{addr}{path}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 308, "{path}");
            assert_eq!(r.headers()["location"], to, "{path}");
        }
    }
}
