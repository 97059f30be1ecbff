//! The signals that stop a serving process.

/// Waits for Ctrl-C (SIGINT) or, on Unix, SIGTERM; returns its name. If no handler can be
/// installed, it says so and never returns: the process is then stopped the hard way, and the
/// next opening of the store marks its unfinished runs Crashed.
pub(crate) async fn stop() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                r = tokio::signal::ctrl_c() => interrupted(r).await,
                _ = term.recv() => "SIGTERM",
            },
            Err(e) => {
                tracing::warn!(target: "flowcore", "Cannot listen for SIGTERM ({e}); only Ctrl-C stops serving gracefully");
                interrupted(tokio::signal::ctrl_c().await).await
            }
        }
    }
    #[cfg(not(unix))]
    {
        interrupted(tokio::signal::ctrl_c().await).await
    }
}

async fn interrupted(listening: std::io::Result<()>) -> &'static str {
    if let Err(e) = listening {
        tracing::error!(target: "flowcore", "Cannot listen for Ctrl-C ({e}); serving until the process is killed");
        std::future::pending::<()>().await;
    }
    "SIGINT"
}
