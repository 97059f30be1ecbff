//! The frame every page shares: head, navigation, footer; and the small pieces pages repeat
//! (state badges, times).

use flowcore::{StateKind, Timestamp};
use maud::{DOCTYPE, Markup, html};

/// Which part of the dashboard a page belongs to, for the navigation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Home,
    Runs,
    Deployments,
    Workers,
    None,
}

/// A whole page. `final_run` is `Some(false)` on the page of a run still going: the script
/// then follows it.
pub fn page(title: &str, section: Section, final_run: Option<bool>, body: Markup) -> Markup {
    let link = |href: &str, name: &str, here: Section| {
        html! { a href=(href) class=[(section == here).then_some("here")] { (name) } }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · flowcore" }
                link rel="stylesheet" href="/assets/dashboard.css";
                script src="/assets/dashboard.js" defer {}
            }
            body data-final=[final_run.map(|f| f.to_string())] {
                header {
                    a.brand href="/" { "flowcore" }
                    nav {
                        (link("/", "Home", Section::Home))
                        (link("/runs", "Runs", Section::Runs))
                        (link("/deployments", "Deployments", Section::Deployments))
                        (link("/workers", "Workers", Section::Workers))
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The page for an error: what went wrong, in words.
pub fn error_page(title: &str, message: &str) -> Markup {
    page(
        title,
        Section::None,
        None,
        html! {
            h1 { (title) }
            p.error-message { (message) }
            p { a href="/" { "Back to the dashboard" } }
        },
    )
}

/// A state's name on its colour, as Prefect's UI shows states (the stylesheet colours
/// `.badge[data-state]`).
pub fn badge(kind: StateKind) -> Markup {
    html! {
        span.badge data-state=(kind.as_str()) { (kind.as_str()) }
    }
}

/// `2026-11-23 18:02:00 UTC`: the server does not know the reader's zone, so times say theirs.
pub fn time(t: Timestamp) -> String {
    t.to_datetime().format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `18:02:00.123`, for log lines and state histories within a run.
pub fn time_of_day(t: Timestamp) -> String {
    t.to_datetime().format("%H:%M:%S%.3f").to_string()
}
