//! What a line written inside a run is labelled with: `Task run 'extract-a8e'`, and the run's
//! id for the store, kept on the run's span when it is made, so that each line finds it there.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use uuid::Uuid;

use crate::terminal::{Escaping, LineFeeds};

/// `Task run 'extract-a8e'` and the run's id, stored on the run's span when it is created.
pub(crate) struct RunLabel {
    pub(crate) label: String,
    pub(crate) id: Uuid,
}

/// Attaches a [`RunLabel`] to each task run and flow run span.
pub(crate) struct RunLabels;

impl<S> Layer<S> for RunLabels
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if !crate::span::is_run_span(attrs.metadata()) {
            return;
        }
        // flowcore's own spans hand their id and label over as they are made.
        if let (Some((run_id, label)), Some(span)) = (crate::span::take_new_run(), ctx.span(id)) {
            span.extensions_mut().insert(RunLabel { label, id: run_id });
            return;
        }
        let mut run = RunFields::default();
        attrs.record(&mut run);
        let kind = if run.flow { "Flow run '" } else { "Task run '" };
        if let (Some(mut label), Some(run_id), Some(span)) = (run.name, run.id, ctx.span(id)) {
            label.insert_str(0, kind);
            label.push('\'');
            span.extensions_mut().insert(RunLabel { label, id: run_id });
        }
    }
}

/// The label and id of the run whose span `event` was written in (or in a span inside it),
/// the label appended to `line`.
pub(crate) fn event_run<S>(
    event: &Event<'_>,
    ctx: &Context<'_, S>,
    line: &mut String,
) -> Option<Uuid>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    ctx.event_scope(event)
        .and_then(|scope| {
            scope.into_iter().find_map(|span| {
                // Copied while the span's extensions are read, not kept: formatting the rest
                // of the line runs user code, which may log.
                let extensions = span.extensions();
                let run = extensions.get::<RunLabel>()?;
                line.push_str(&run.label);
                Some(run.id)
            })
        })
        .or_else(|| {
            crate::span::with_current_run(|id, label| {
                line.push_str(label);
                id
            })
        })
}

/// The run id of the run whose span `event` was written in.
pub(crate) fn event_run_id<S>(event: &Event<'_>, ctx: &Context<'_, S>) -> Option<Uuid>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    ctx.event_scope(event)
        .and_then(|scope| {
            scope
                .into_iter()
                .find_map(|span| span.extensions().get::<RunLabel>().map(|l| l.id))
        })
        .or_else(|| crate::span::with_current_run(|id, _| id))
}

/// A run span's fields, read without a copy each: the name straight into the label (escaped
/// once here, not at every line: a run name is user code's to choose), the id through a buffer
/// on the stack when it was not handed over.
#[derive(Default)]
struct RunFields {
    name: Option<String>,
    id: Option<Uuid>,
    flow: bool,
}

impl Visit for RunFields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "run" => {
                let mut name = String::with_capacity(48);
                let _ = write!(Escaping::new(&mut name, LineFeeds::Escape), "{value:?}");
                self.name = Some(name);
            }
            "id" if self.id.is_none() => {
                let mut text = IdText::default();
                self.id = write!(text, "{value:?}")
                    .ok()
                    .and_then(|()| Uuid::try_parse_ascii(text.as_bytes()).ok());
            }
            "kind" => {
                let mut text = IdText::default();
                self.flow = write!(text, "{value:?}").is_ok() && text.as_bytes() == b"flow";
            }
            _ => {}
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "kind" => self.flow = value == "flow",
            _ => self.record_debug(field, &value),
        }
    }
}

/// Room for a run id as text (36 bytes, hyphenated): a longer text is no run id.
struct IdText {
    bytes: [u8; 40],
    len: usize,
}

impl Default for IdText {
    fn default() -> Self {
        IdText {
            bytes: [0; 40],
            len: 0,
        }
    }
}

impl IdText {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl fmt::Write for IdText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let room = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        room.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
