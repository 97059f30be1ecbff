//! Colours: each state has one, shown only when a person is reading.

use std::io::IsTerminal as _;

use flowcore::StateKind;

/// An ANSI foreground colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Colour {
    Green,
    Red,
    Blue,
    Yellow,
    Grey,
    Teal,
}

impl Colour {
    fn code(self) -> &'static str {
        match self {
            Colour::Green => "32",
            Colour::Red => "31",
            Colour::Blue => "34",
            Colour::Yellow => "33",
            Colour::Grey => "90",
            Colour::Teal => "36",
        }
    }
}

/// The colour of a state, the same everywhere it is shown.
pub fn state_colour(kind: StateKind) -> Option<Colour> {
    Some(match kind {
        StateKind::Completed => Colour::Green,
        StateKind::Failed | StateKind::Crashed | StateKind::TimedOut => Colour::Red,
        StateKind::Running => Colour::Blue,
        StateKind::Scheduled | StateKind::Late | StateKind::Pending | StateKind::Retrying => {
            Colour::Yellow
        }
        StateKind::Cancelled => Colour::Grey,
        StateKind::Cached => Colour::Teal,
        // StateKind is non-exhaustive: a state added later is shown uncoloured.
        _ => return None,
    })
}

/// Whether to colour the output.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub colour: bool,
}

impl Style {
    /// Colour when stdout is a terminal, unless NO_COLOR is set and not empty
    /// (https://no-color.org): piped output stays plain for `grep` and scripts.
    pub fn detect() -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            colour: !no_color && std::io::stdout().is_terminal(),
        }
    }

    /// `text` in `colour`, or as it is when colouring is off.
    pub fn paint(self, text: &str, colour: Option<Colour>) -> String {
        match colour {
            Some(c) if self.colour && !text.is_empty() => {
                format!("\x1b[{}m{text}\x1b[0m", c.code())
            }
            _ => text.to_owned(),
        }
    }

    /// A state's name in its colour.
    pub fn state(self, kind: StateKind) -> String {
        self.paint(kind.as_str(), state_colour(kind))
    }
}
