//! Artifacts on the run page: markdown rendered with raw HTML shown as text and only safe link
//! targets kept, tables as HTML tables, links as links. Everything from the store is user
//! code's: nothing in it may become markup or script.

use flowcore::artifact::{Artifact, ArtifactKind};
use maud::{Markup, PreEscaped, html};
use pulldown_cmark::{CowStr, Event, LinkType, Options, Parser, Tag};
use serde_json::Value;

/// The section listing a run's artifacts, or nothing when it made none.
pub fn section(artifacts: &[Artifact]) -> Markup {
    html! {
        @if !artifacts.is_empty() {
            h2 { "Artifacts" }
            @for a in artifacts {
                section.artifact data-key=(a.key) data-kind=(a.kind.as_str()) {
                    h3 { (a.key) " " span.kind { (a.kind.as_str()) } }
                    (render(a))
                }
            }
        }
    }
}

fn render(artifact: &Artifact) -> Markup {
    match artifact.kind {
        ArtifactKind::Markdown => html! { div.markdown { (markdown(&artifact.body)) } },
        ArtifactKind::Table => table(artifact),
        ArtifactKind::Link if safe_url(&artifact.body) => html! {
            a href=(artifact.body) rel="noopener noreferrer" { (artifact.body) }
        },
        _ => html! { code { (artifact.body) } },
    }
}

/// Markdown as HTML, with raw HTML turned into text and link and image targets other than
/// http, https, mailto or relative ones replaced by `#` (no `javascript:`).
pub fn markdown(text: &str) -> PreEscaped<String> {
    let events = Parser::new_ext(text, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH).map(
        |event| match event {
            Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => Event::Start(Tag::Link {
                link_type,
                dest_url: guarded(dest_url, link_type),
                title,
                id,
            }),
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            }) => Event::Start(Tag::Image {
                link_type,
                dest_url: guarded(dest_url, link_type),
                title,
                id,
            }),
            other => other,
        },
    );
    let mut out = String::new();
    pulldown_cmark::html::push_html(&mut out, events);
    PreEscaped(out)
}

fn guarded(url: CowStr<'_>, _: LinkType) -> CowStr<'_> {
    if safe_url(&url) {
        url
    } else {
        CowStr::Borrowed("#")
    }
}

/// http, https and mailto URLs, and relative ones (no scheme).
fn safe_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    let scheme_end = lower.find(':');
    let before_path = lower.find(['/', '?', '#']).unwrap_or(lower.len());
    match scheme_end {
        Some(at) if at < before_path => {
            lower.starts_with("http:")
                || lower.starts_with("https:")
                || lower.starts_with("mailto:")
        }
        _ => true,
    }
}

fn table(artifact: &Artifact) -> Markup {
    let (columns, rows) = artifact.table().unwrap_or_default();
    let text = |v: &Value| match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    html! {
        table.artifact-table {
            thead { tr { @for c in &columns { th { (c) } } } }
            tbody {
                @for row in &rows {
                    tr { @for v in row { td { (text(v)) } } }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_html_and_script_urls_never_become_markup() {
        let html = markdown(
            "# Report\n\n<script>alert(1)</script>\n\nfine <b>bold</b> [x](javascript:alert(1)) [y](https://example.com)",
        )
        .0;
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(
            html.contains(r#"<a href="https://example.com">y</a>"#),
            "{html}"
        );
        assert!(html.contains("<h1>Report</h1>"), "{html}");
    }

    #[test]
    fn only_web_and_relative_urls_are_safe() {
        assert!(safe_url("https://example.com/a"));
        assert!(safe_url("/runs/1"));
        assert!(safe_url("mailto:a@example.com"));
        assert!(!safe_url("javascript:alert(1)"));
        assert!(!safe_url(" JavaScript:alert(1)"));
        assert!(!safe_url("data:text/html,x"));
    }
}
