//! A task run's output's JSON, from its encoding to the store that keeps it (the memory store
//! keeps it as it comes): most of it is short (a number, a word, `true`), and a heap allocation
//! of its own for each costs more memory than the text (a million task runs returning numbers
//! kept 32 MB of such allocations), and time (an allocation, a copy and a free per task run
//! when the store kept a copy of the string the run made).

/// Up to this many bytes are kept inline.
const INLINE: usize = 22;

/// A text of up to [`INLINE`] bytes kept in place, a longer one on the heap: 24 bytes either
/// way.
#[derive(Clone)]
pub(crate) enum ShortText {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl ShortText {
    /// A copy of `text`.
    pub(crate) fn copy_of(text: &str) -> ShortText {
        match u8::try_from(text.len()) {
            Ok(len) if usize::from(len) <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..text.len()].copy_from_slice(text.as_bytes());
                ShortText::Inline { len, bytes }
            }
            _ => ShortText::Heap(text.into()),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            ShortText::Inline { len, bytes } => std::str::from_utf8(&bytes[..usize::from(*len)])
                .expect("made from a str, cut at its own length"),
            ShortText::Heap(text) => text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_texts_are_kept_in_place_and_long_ones_on_the_heap_both_read_back() {
        for text in [
            "",
            "7",
            "\"héllo\"",
            &"x".repeat(INLINE),
            &"y".repeat(INLINE + 1),
        ] {
            let kept = ShortText::copy_of(text);
            assert_eq!(kept.as_str(), text);
            assert_eq!(
                matches!(kept, ShortText::Inline { .. }),
                text.len() <= INLINE,
                "{text}"
            );
        }
        assert_eq!(std::mem::size_of::<Option<ShortText>>(), 24);
    }
}
