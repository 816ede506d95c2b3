//! The local HTTP API of `serve`. Handlers only read the last published report (they never
//! diagnose, except `POST /v1/diagnose`, which is rate-limited). The accept loops bound what a
//! client can cost: header size and read time, request body size and handling time, the number
//! of open connections, and (on a non-loopback listener) an allow-list of client CIDRs.
//!
//! `GET /v1/report` · `GET /v1/checks/{id}` · `GET /v1/history` · `POST /v1/diagnose` ·
//! `GET /metrics` · `GET /healthz`

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use ipnet::IpNet;
use tokio::sync::watch;

use crate::engine::{Engine, Published, Refresh};

mod conn;
pub use conn::{bind_unix, listen_tcp, serve_tcp, serve_unix, ConnLimits};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_BODY_BYTES: usize = 1024;

#[derive(Clone)]
pub struct AppState {
    published: watch::Receiver<Arc<Published>>,
    engine: Arc<Engine>,
}

impl AppState {
    pub fn new(engine: Arc<Engine>) -> AppState {
        AppState {
            published: engine.subscribe(),
            engine,
        }
    }
    fn current(&self) -> Arc<Published> {
        self.published.borrow().clone()
    }
}

/// Every error the API returns: a status and a JSON `{"error": ...}` body.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }
    fn no_report() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no report yet: the first diagnosis is still running",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.message}).to_string();
        let mut r = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

fn json_bytes(bytes: impl Into<axum::body::Bytes>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], bytes.into()).into_response()
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/report", get(report))
        .route("/v1/checks/{id}", get(check))
        .route("/v1/history", get(history))
        .route("/v1/diagnose", post(diagnose))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            MAX_BODY_BYTES,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(state)
}

async fn report(State(s): State<AppState>) -> Result<Response, ApiError> {
    let p = s.current();
    if p.report.is_none() {
        return Err(ApiError::no_report());
    }
    Ok(json_bytes(p.report_json.clone()))
}

/// The last `server.history_entries` status transitions, oldest first.
async fn history(State(s): State<AppState>) -> Response {
    json_bytes(s.current().history_json.clone())
}

async fn check(
    State(s): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let p = s.current();
    let report = p.report.as_ref().ok_or_else(ApiError::no_report)?;
    match report.checks.iter().find(|f| f.id == id) {
        Some(f) => Ok(json_bytes(serde_json::to_vec(f).unwrap_or_default())),
        None => {
            let known: Vec<&str> = crate::checks::catalogue().map(|c| c.id).collect();
            Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("unknown check id {id:?}; known ids: {}", known.join(", ")),
            ))
        }
    }
}

async fn diagnose(State(s): State<AppState>, body: Body) -> Result<Response, ApiError> {
    // Read (and bound) the body first: a chunked one has no length for the limit layer to
    // refuse up front, and must not stream on while a diagnosis runs.
    if axum::body::to_bytes(body, MAX_BODY_BYTES).await.is_err() {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("POST /v1/diagnose takes no body (at most {MAX_BODY_BYTES} bytes)"),
        ));
    }
    if let Err(wait) = s.engine.claim_diagnose() {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        return Err(ApiError {
            retry_after: Some(secs),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("a diagnosis ran or is running; retry in {secs} s"),
            )
        });
    }
    match s.engine.diagnose().await {
        Refresh::Done(r) => Ok(json_bytes(serde_json::to_vec(&*r).unwrap_or_default())),
        Refresh::Busy => Err(ApiError {
            retry_after: Some(1),
            ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "a diagnosis is running")
        }),
        Refresh::TimedOut => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "the diagnosis took longer than refresh.timeout_s; the previous report is served, marked stale",
        )),
        Refresh::Failed(e) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e)),
    }
}

async fn metrics(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let p = s.current();
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    if openmetrics {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            p.metrics_openmetrics.clone(),
        )
            .into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            p.metrics_text.clone(),
        )
            .into_response()
    }
}

async fn healthz(State(s): State<AppState>) -> Response {
    let p = s.current();
    if let Some(since) = s.engine.stalled_since() {
        let since = crate::rfc3339_ms(since);
        let body = serde_json::json!({
            "status": "stalled",
            "error": format!("refresh stalled since {since}: no refresh has completed for 3 refresh intervals"),
            "stalled_since": since,
        });
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
    }
    let state = match &p.report {
        None => "starting",
        Some(r) if r.stale => "stale",
        Some(_) => "fresh",
    };
    let age = p
        .refreshed_at
        .map(|t| (crate::unix_ms() as f64 / 1000.0 - t).max(0.0));
    json_bytes(
        serde_json::json!({"status": "ok", "report": state, "report_age_seconds": age})
            .to_string()
            .into_bytes(),
    )
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such endpoint; try /v1/report, /v1/checks/{id}, /v1/history, /v1/diagnose (POST), /metrics, /healthz",
    )
}

/// Loopback clients are always allowed; others only from an allowed CIDR (and only a
/// non-loopback listener can see them at all).
pub fn client_allowed(peer: IpAddr, allow: &[IpNet]) -> bool {
    let peer = match peer {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    peer.is_loopback() || allow.iter().any(|n| n.contains(&peer))
}

/// For tests and tools: a request body.
pub fn empty() -> Body {
    Body::empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, MetadataMode};
    use axum::http::Request;
    use tower::ServiceExt;

    /// An engine whose refreshes read fixture roots only (no metadata, no host /etc).
    fn engine() -> (Arc<Engine>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config::default();
        c.metadata.mode = MetadataMode::Never;
        c.paths.etc = dir.path().join("etc");
        c.paths.sys = dir.path().join("sys");
        c.server.diagnose_min_interval_s = 60;
        (Engine::new(c).0, dir)
    }

    async fn call(
        app: &Router,
        method: &str,
        uri: &str,
        accept: Option<&str>,
    ) -> (StatusCode, HeaderMap, String) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(a) = accept {
            req = req.header(header::ACCEPT, a);
        }
        let resp = app
            .clone()
            .oneshot(req.body(empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn before_the_first_report() {
        let (engine, _d) = engine();
        let app = router(AppState::new(engine));
        let (st, _, body) = call(&app, "GET", "/v1/report", None).await;
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("first diagnosis"));
        let (st, _, body) = call(&app, "GET", "/healthz", None).await;
        assert_eq!(st, StatusCode::OK);
        assert!(body.contains("\"starting\""));
        let (st, _, body) = call(&app, "GET", "/metrics", None).await;
        assert_eq!(st, StatusCode::OK);
        assert!(body.contains("ecs_diag_build_info"));
    }

    #[tokio::test]
    async fn serves_the_cached_report_and_checks() {
        let (engine, _d) = engine();
        assert!(matches!(engine.refresh().await, Refresh::Done(_)));
        let app = router(AppState::new(engine));
        let (st, h, body) = call(&app, "GET", "/v1/report", None).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(h[header::CONTENT_TYPE], "application/json");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(
            v["checks"].as_array().unwrap().len(),
            crate::checks::catalogue().count()
        );
        assert_eq!(v["stale"], false);

        let (st, _, body) = call(&app, "GET", "/v1/checks/sysctl.icmp_echo", None).await;
        assert_eq!(st, StatusCode::OK);
        assert!(body.contains("\"id\":\"sysctl.icmp_echo\""));
        let (st, _, body) = call(&app, "GET", "/v1/checks/nope.nope", None).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(v["error"].as_str().unwrap().contains("link.primary"));

        let (st, h, body) = call(&app, "GET", "/metrics", None).await;
        assert_eq!(st, StatusCode::OK);
        assert!(h[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"));
        assert!(body.contains("ecs_diag_check_status{check=\"link.primary\""));
        assert!(!body.contains("# EOF"));
        let (_, h, body) = call(
            &app,
            "GET",
            "/metrics",
            Some("application/openmetrics-text; version=1.0.0"),
        )
        .await;
        assert!(h[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"));
        assert!(body.ends_with("# EOF\n"));

        let (st, _, body) = call(&app, "GET", "/nowhere", None).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        assert!(body.contains("/v1/report"));
        let (st, _, _) = call(&app, "DELETE", "/v1/report", None).await;
        assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
    }

    #[tokio::test]
    async fn diagnose_is_rate_limited() {
        let (engine, _d) = engine();
        let app = router(AppState::new(engine));
        let (st, _, body) = call(&app, "POST", "/v1/diagnose", None).await;
        assert_eq!(st, StatusCode::OK, "{body}");
        assert!(body.contains("\"checks\""));
        let (st, h, body) = call(&app, "POST", "/v1/diagnose", None).await;
        assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{body}");
        let retry: u64 = h[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry));
        // Reads still answer from the cache.
        assert_eq!(
            call(&app, "GET", "/v1/report", None).await.0,
            StatusCode::OK
        );
    }

    #[test]
    fn allow_list() {
        let allow: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert!(client_allowed("127.0.0.1".parse().unwrap(), &[]));
        assert!(client_allowed("::1".parse().unwrap(), &[]));
        assert!(client_allowed("10.1.2.3".parse().unwrap(), &allow));
        assert!(client_allowed("::ffff:10.1.2.3".parse().unwrap(), &allow));
        assert!(!client_allowed("192.168.1.1".parse().unwrap(), &allow));
    }
}
