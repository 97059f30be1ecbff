//! `flowcore server start`: the dashboard, served from the run store.
//!
//! Pages are rendered on the server with maud (which escapes every value spliced into them)
//! and use a little plain JavaScript; the stylesheet and script are compiled into the binary,
//! so the dashboard works offline. The JSON API under `/api/` is what the pages' script uses,
//! and what users can script against.
//!
//! It answers only requests for its own host names and changes made from its own pages
//! ([`guard`]), and serves connections within timeouts and a cap ([`connections`]).

mod api;
mod artifacts;
mod chart;
mod connections;
mod drawing;
mod error;
mod graph_svg;
mod guard;
mod layout;
mod pages;
mod timeline;
mod window;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use flowcore::{StateKind, Store};

use crate::Failure;
use crate::args::ServerArgs;
use crate::open::Location;
use connections::Limits;
use guard::{AllowedHost, Hosts};

/// What every handler shares: the store, and where it is (for the page footer).
#[derive(Clone)]
pub struct App {
    pub store: Store,
    pub store_path: Arc<str>,
}

/// Serves the dashboard until SIGINT or SIGTERM.
pub fn start(location: &Location, args: &ServerArgs) -> Result<String, Failure> {
    let store = crate::open::open(location)?;
    let ip: IpAddr = args.host.parse().map_err(|_| {
        Failure::new(format!(
            "--host {:?} is not an IP address; use 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)",
            args.host
        ))
    })?;
    let allowed = args
        .allow_host
        .iter()
        .map(|name| name.parse::<AllowedHost>().map_err(Failure::new))
        .collect::<Result<Vec<_>, _>>()?;
    let limits = Limits::from_env()?;
    if !ip.is_loopback() {
        eprintln!(
            "flowcore: warning: serving the dashboard on {ip}, reachable from other machines; it has no login, and anyone who reaches it can read every run and start deployments{}",
            if ip.is_unspecified() {
                " (it answers only requests for 127.0.0.1, localhost and the names given with --allow-host)"
            } else {
                ""
            }
        );
    }
    let app = App {
        store,
        store_path: Arc::from(location.describe()),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(format!("cannot start the server's runtime: {e}")))?;
    let served = runtime.block_on(serve(app, ip, args.port, allowed, limits));
    // A request's read of the store may still run on a blocking thread: not for long.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    served
}

async fn serve(
    app: App,
    ip: IpAddr,
    port: u16,
    allowed: Vec<AllowedHost>,
    limits: Limits,
) -> Result<String, Failure> {
    let addr = SocketAddr::new(ip, port);
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
            "; another dashboard may be running there: stop it, or pick another port with --port"
        } else {
            ""
        };
        Failure::new(format!("cannot listen on {addr}: {e}{hint}"))
    })?;
    let bound = listener
        .local_addr()
        .map_err(|e| Failure::new(format!("cannot read the address listened on: {e}")))?;
    let line = format!(
        "flowcore dashboard at http://{bound}/ (store {})\n",
        app.store_path
    );
    crate::deployment::print_now(&line)?;
    let hosts = Arc::new(Hosts::new(ip, bound, allowed));
    let left = connections::serve(listener, router(app, hosts, limits), limits, stopped()).await;
    if left > 0 {
        eprintln!(
            "flowcore: stopped with {left} connection(s) still open after {:?}",
            limits.shutdown_grace
        );
    }
    Ok(String::new())
}

/// Every route of the dashboard, behind its checks: the host and origin ([`guard::check`]),
/// the request timeout, and the security headers on every answer.
fn router(app: App, hosts: Arc<Hosts>, limits: Limits) -> Router {
    Router::new()
        .route("/", get(pages::home))
        .route("/runs", get(pages::runs))
        .route("/runs/{id}", get(pages::run))
        .route("/runs/{id}/cancel", post(pages::cancel))
        .route("/runs/{id}/input", post(pages::give_input))
        .route("/deployments", get(pages::deployments))
        .route("/deployments/{name}/run", post(pages::run_now))
        .route("/deployments/{name}/pause", post(pages::pause))
        .route("/deployments/{name}/resume", post(pages::resume))
        .route("/workers", get(pages::workers))
        .route("/api/stats", get(api::stats))
        .route("/api/runs", get(api::runs))
        .route("/api/runs/{id}", get(api::run))
        .route("/api/runs/{id}/state", get(api::run_state))
        .route("/api/runs/{id}/cancel", post(api::cancel))
        .route("/api/runs/{id}/input", post(api::give_input))
        .route("/api/deployments", get(api::deployments))
        .route("/api/deployments/{name}/runs", post(api::request_run))
        .route("/api/workers", get(api::workers))
        .route("/assets/dashboard.css", get(css))
        .route("/assets/dashboard.js", get(js))
        .fallback(pages::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(app)
        .layer(middleware::from_fn_with_state(limits, within_time))
        .layer(middleware::from_fn_with_state(hosts, guard::check))
        .layer(middleware::map_response(guard::security_headers))
}

/// Answers 408 when a request, its body included, is not answered within the limit.
async fn within_time(State(limits): State<Limits>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    match tokio::time::timeout(limits.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error::respond(
            &path,
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request was not answered within {:?}",
                limits.request_timeout
            ),
        ),
    }
}

/// The stylesheet, and the states' colours (`StateKind::colour`) as rules: the pages carry
/// no `style` attribute, as the content security policy allows none.
async fn css() -> impl IntoResponse {
    static CSS: LazyLock<String> = LazyLock::new(|| {
        let mut css = include_str!("assets/dashboard.css").to_owned();
        css.push_str("/* The states' colours, from StateKind::colour(). */\n");
        for kind in StateKind::ALL {
            let (state, colour, text) = (kind.as_str(), kind.colour(), kind.text_colour());
            css.push_str(&format!(
                ".badge[data-state=\"{state}\"] {{ background: {colour}; color: {text}; }}\n\
                 .mini[data-state=\"{state}\"] {{ color: {colour}; }}\n"
            ));
        }
        css
    });
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        CSS.as_str(),
    )
}

async fn js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/dashboard.js"),
    )
}

/// Completes on Ctrl-C or SIGTERM.
async fn stopped() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    () = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => ctrl_c.await,
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}
