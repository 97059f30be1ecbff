//! Setting flowcore's logging up in one call, for `main`.

use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::logging::layer;

/// Installs a global subscriber printing Prefect-style lines to stdout (and keeping runs' lines
/// in the run store), filtered by `RUST_LOG`: a level (`debug`), levels by target
/// (`warn,my_crate=debug`), or both; `info` for whatever it does not name. Does nothing if a
/// global subscriber is already set, so it is safe to call from every example and test.
///
/// Nothing but flowcore's layers listen to this subscriber, so runs make no tracing span under
/// it: a line is labelled with the run being polled on its thread (a span per run was most of
/// a logged task run's cost). Build your own subscriber with [`layer()`](crate::logging::layer)
/// to have a span per run for other layers.
///
/// An invalid `RUST_LOG` is reported on stderr and `info` is used instead. The filter is
/// tracing-subscriber's `Targets`, which takes levels and targets but not the span and field
/// filters of its `EnvFilter`: those need the regex engine, seconds of build for every user
/// (build your own subscriber with `EnvFilter` and [`layer()`](crate::logging::layer) for them).
///
/// ```
/// flowcore::init_logging();
/// flowcore::init_logging(); // a second call is harmless
/// ```
pub fn init_logging() {
    let filter = filter(std::env::var("RUST_LOG").ok().as_deref());
    // The filter for the whole subscriber, not for the one layer: the same lines with one layer,
    // without the per-layer bookkeeping at every span and line (a tenth of a logged task run).
    // Only flowcore's layers listen: runs are labelled without spans (see `span::RunSpan`).
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(layer())
        .with(crate::logging::runs_without_spans())
        .try_init();
}

/// The filter `RUST_LOG` asks for: `info` for what it does not name, and all of it at `info`
/// when it cannot be read (said on stderr).
fn filter(rust_log: Option<&str>) -> Targets {
    let filter = match rust_log.map(str::trim) {
        Some(directives) if !directives.is_empty() => {
            directives.parse::<Targets>().unwrap_or_else(|e| {
                eprintln!("flowcore: ignoring RUST_LOG ({e}); logging at info");
                Targets::new()
            })
        }
        _ => Targets::new(),
    };
    match filter.default_level() {
        Some(_) => filter,
        None => filter.with_default(Level::INFO),
    }
}

#[cfg(test)]
mod tests {
    use tracing::level_filters::LevelFilter;

    use super::*;

    #[test]
    fn rust_log_sets_levels_by_target_and_info_is_the_rest() {
        let f = filter(Some("warn,flowcore=debug"));
        assert!(f.would_enable("flowcore", &Level::DEBUG));
        assert!(!f.would_enable("my_app", &Level::INFO));
        assert!(f.would_enable("my_app", &Level::WARN));

        let f = filter(Some("hyper=debug"));
        assert!(f.would_enable("hyper", &Level::DEBUG));
        assert!(f.would_enable("my_app", &Level::INFO));
        assert!(!f.would_enable("my_app", &Level::DEBUG));

        for unset in [None, Some(""), Some("  ")] {
            assert_eq!(filter(unset).default_level(), Some(LevelFilter::INFO));
        }
        // Not a directive tracing-subscriber's `Targets` reads: all at info.
        let f = filter(Some("=::["));
        assert_eq!(f.default_level(), Some(LevelFilter::INFO));
    }
}
