//! What the dashboard's three drawings (the runs chart, the timeline, the task graph) share:
//! their font and colours of text and grid lines, and how a label is cut to fit.

pub const FONT: &str = "system-ui, -apple-system, 'Segoe UI', sans-serif";
pub const TEXT_COLOUR: &str = "#424242";
pub const GRID_COLOUR: &str = "#eeeeee";

/// `text` cut to `max` characters, the last one an ellipsis when cut; each drawing puts the
/// whole text in a tooltip.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn a_label_is_cut_with_an_ellipsis_only_when_too_long() {
        assert_eq!(truncate("extract", 7), "extract");
        assert_eq!(truncate("extract", 5), "extr…");
        assert_eq!(truncate("été-été", 4), "été…");
    }
}
