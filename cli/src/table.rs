//! Plain-text tables: columns sized to their widest cell, two spaces apart, numbers
//! right-aligned. Widths count the columns a cell takes on screen ([`display_width`]: a kanji
//! takes two), without its colour codes, so coloured and wide cells line up with plain ones.
//! Plain cells hold text from the store (names, errors, messages): its control characters are
//! escaped (`\u{1b}`), and widths are those of the escaped text, which is what is printed.

use std::borrow::Cow;

use flowcore::StateKind;
use flowcore::terminal::{display_width, escape_controls};

use crate::style::Style;

/// One cell: its text as printed (maybe with colour codes) and how wide it shows.
pub struct Cell {
    text: String,
    width: usize,
}

impl Cell {
    /// A cell without colour. Only its first line is kept: a table row is one line. Its
    /// control characters are escaped: it may come from user code, by way of the store.
    pub fn plain(text: impl AsRef<str>) -> Cell {
        let first = crate::format::first_line(text.as_ref());
        let text = match escape_controls(&first) {
            Cow::Owned(escaped) => escaped,
            Cow::Borrowed(_) => first,
        };
        Cell {
            width: display_width(&text),
            text,
        }
    }

    /// A state's name in its colour.
    pub fn state(kind: StateKind, style: Style) -> Cell {
        Cell {
            width: display_width(kind.as_str()),
            text: style.state(kind),
        }
    }

    /// Text already coloured, with the width it shows.
    pub fn styled(text: String, width: usize) -> Cell {
        Cell { text, width }
    }

    fn is_empty(&self) -> bool {
        self.width == 0
    }
}

/// A column's heading and layout.
pub struct Column {
    name: &'static str,
    right: bool,
    optional: bool,
}

impl Column {
    /// A left-aligned column.
    pub fn left(name: &'static str) -> Column {
        Column {
            name,
            right: false,
            optional: false,
        }
    }

    /// A right-aligned column, for numbers and durations.
    pub fn right(name: &'static str) -> Column {
        Column {
            right: true,
            ..Column::left(name)
        }
    }

    /// Left out when no row has anything in it (a Cache column when nothing is cached).
    pub fn optional(self) -> Column {
        Column {
            optional: true,
            ..self
        }
    }
}

/// A table being filled row by row.
pub struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn new(columns: Vec<Column>) -> Table {
        Table {
            columns,
            rows: Vec::new(),
        }
    }

    /// Adds a row; it must have a cell for each column.
    pub fn row(&mut self, cells: Vec<Cell>) {
        debug_assert_eq!(cells.len(), self.columns.len());
        self.rows.push(cells);
    }

    /// The table, heading first, each line ending in a newline.
    pub fn render(&self) -> String {
        let shown: Vec<usize> = (0..self.columns.len())
            .filter(|&c| !self.columns[c].optional || self.rows.iter().any(|r| !r[c].is_empty()))
            .collect();
        let widths: Vec<usize> = (0..self.columns.len())
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| r[c].width)
                    .chain([display_width(self.columns[c].name)])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let heading: Vec<Cell> = self.columns.iter().map(|c| Cell::plain(c.name)).collect();
        let mut out = String::new();
        for row in std::iter::once(&heading).chain(&self.rows) {
            let mut line = String::new();
            for (i, &c) in shown.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = " ".repeat(widths[c].saturating_sub(row[c].width));
                if self.columns[c].right {
                    line.push_str(&pad);
                    line.push_str(&row[c].text);
                } else {
                    line.push_str(&row[c].text);
                    line.push_str(&pad);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_whatever_the_colours() {
        let style = Style { colour: true };
        let mut table = Table::new(vec![
            Column::left("Name"),
            Column::left("State"),
            Column::right("Attempts"),
            Column::left("Cache").optional(),
        ]);
        table.row(vec![
            Cell::plain("extract-a8e"),
            Cell::state(StateKind::Completed, style),
            Cell::plain("1"),
            Cell::plain(""),
        ]);
        table.row(vec![
            Cell::plain("load"),
            Cell::state(StateKind::Failed, style),
            Cell::plain("12"),
            Cell::plain(""),
        ]);
        assert_eq!(
            table.render(),
            "Name         State      Attempts\n\
             extract-a8e  \x1b[32mCompleted\x1b[0m         1\n\
             load         \x1b[31mFailed\x1b[0m           12\n"
        );
    }

    #[test]
    fn plain_cells_show_control_characters_escaped_and_line_up_on_the_escaped_text() {
        let mut table = Table::new(vec![Column::left("Name"), Column::left("Error")]);
        table.row(vec![Cell::plain("a\x1b]0;t\x07"), Cell::plain("x\ry")]);
        table.row(vec![Cell::plain("b"), Cell::plain("\u{9b}2J")]);
        assert_eq!(
            table.render(),
            // The first column is as wide as `a\u{1b}]0;t\u{7}`, 16 characters.
            "Name              Error\n\
             a\\u{1b}]0;t\\u{7}  x\\ry\n\
             b                 \\u{9b}2J\n"
        );
    }
}
