//! Setting flowcore's logging up in one call, for `main`.

use tracing::Level;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::logging::layer;

/// Installs a global subscriber printing Prefect-style lines to stdout, filtered by
/// `RUST_LOG` (default `info`). Does nothing if a global subscriber is already set, so it is
/// safe to call from every example and test.
///
/// An invalid `RUST_LOG` is reported on stderr and `info` is used instead.
///
/// ```
/// flowcore::init_logging();
/// flowcore::init_logging(); // a second call is harmless
/// ```
pub fn init_logging() {
    let filter = EnvFilter::builder()
        .with_default_directive(Level::INFO.into())
        .from_env()
        .unwrap_or_else(|e| {
            eprintln!("flowcore: ignoring RUST_LOG ({e}); logging at info");
            EnvFilter::new("info")
        });
    let _ = tracing_subscriber::registry()
        .with(layer().with_filter(filter))
        .try_init();
}
