//! `flowcore server start`: the dashboard, served from the run store.
//!
//! Pages are rendered on the server with maud (which escapes every value spliced into them)
//! and use a little plain JavaScript; the stylesheet and script are compiled into the binary,
//! so the dashboard works offline. The JSON API under `/api/` is what the pages' script uses,
//! and what users can script against.

mod api;
mod chart;
mod drawing;
mod error;
mod graph_svg;
mod layout;
mod pages;
mod timeline;
mod window;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use flowcore::Store;

use crate::Failure;
use crate::args::ServerArgs;

/// What every handler shares: the store, and where it is (for the page footer).
#[derive(Clone)]
pub struct App {
    pub store: Store,
    pub store_path: Arc<str>,
}

/// Serves the dashboard until SIGINT or SIGTERM.
pub fn start(path: &Path, args: &ServerArgs) -> Result<String, Failure> {
    let store = crate::open::open(path)?;
    let ip: IpAddr = args.host.parse().map_err(|_| {
        Failure::new(format!(
            "--host {:?} is not an IP address; use 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)",
            args.host
        ))
    })?;
    if !ip.is_loopback() {
        eprintln!(
            "flowcore: warning: serving the dashboard on {ip}, reachable from other machines; it has no login, and anyone who reaches it can read every run and start deployments"
        );
    }
    let app = App {
        store,
        store_path: Arc::from(path.display().to_string()),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(format!("cannot start the server's runtime: {e}")))?;
    runtime.block_on(serve(app, SocketAddr::new(ip, args.port)))
}

async fn serve(app: App, addr: SocketAddr) -> Result<String, Failure> {
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
    axum::serve(listener, router(app))
        .with_graceful_shutdown(stopped())
        .await
        .map_err(|e| Failure::new(format!("the server stopped: {e}")))?;
    Ok(String::new())
}

/// Every route of the dashboard.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/", get(pages::home))
        .route("/runs", get(pages::runs))
        .route("/runs/{id}", get(pages::run))
        .route("/deployments", get(pages::deployments))
        .route("/deployments/{name}/run", post(pages::run_now))
        .route("/api/stats", get(api::stats))
        .route("/api/runs", get(api::runs))
        .route("/api/runs/{id}", get(api::run))
        .route("/api/runs/{id}/state", get(api::run_state))
        .route("/api/deployments", get(api::deployments))
        .route("/api/deployments/{name}/runs", post(api::request_run))
        .route("/assets/dashboard.css", get(css))
        .route("/assets/dashboard.js", get(js))
        .fallback(pages::not_found)
        .with_state(app)
}

async fn css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/dashboard.css"),
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
