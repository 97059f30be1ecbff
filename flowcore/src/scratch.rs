//! Buffers a thread keeps between uses: text or JSON written in one, then copied once into
//! what keeps it, rather than into a string of its own that grows by copying as it is written.

use std::cell::Cell;
use std::thread::LocalKey;

/// A buffer grown past this is not kept for the next use: one huge line's room is given back.
pub(crate) const KEPT_CAPACITY: usize = 64 * 1024;

/// What a kept buffer is: emptied before each use, kept after it unless it grew too large.
pub(crate) trait Buffer: Default {
    fn clear(&mut self);
    fn capacity(&self) -> usize;
}

impl Buffer for String {
    fn clear(&mut self) {
        String::clear(self);
    }
    fn capacity(&self) -> usize {
        String::capacity(self)
    }
}

impl Buffer for Vec<u8> {
    fn clear(&mut self) {
        Vec::clear(self);
    }
    fn capacity(&self) -> usize {
        Vec::capacity(self)
    }
}

/// Calls `write` with the buffer `slot` keeps, emptied, and keeps it again unless it grew
/// past `keep_up_to`.
///
/// Taken from the slot, not borrowed: a use that starts while `write` runs (a `Display` or a
/// `Serialize` that logs, or that makes a message of its own) finds an empty buffer and
/// makes its own, rather than a borrow that is already taken.
#[inline]
pub(crate) fn with_kept<B: Buffer, T>(
    slot: &'static LocalKey<Cell<B>>,
    keep_up_to: usize,
    write: impl FnOnce(&mut B) -> T,
) -> T {
    let mut buffer = slot.take();
    buffer.clear();
    let out = write(&mut buffer);
    if buffer.capacity() <= keep_up_to {
        slot.set(buffer);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static SLOT: Cell<String> = const { Cell::new(String::new()) };
    }

    #[test]
    fn a_use_inside_a_use_gets_a_buffer_of_its_own_and_each_starts_empty() {
        let outer = with_kept(&SLOT, 1024, |outer| {
            outer.push_str("outer");
            let inner = with_kept(&SLOT, 1024, |inner| {
                inner.push_str("inner");
                inner.clone()
            });
            outer.push_str(&inner);
            outer.clone()
        });
        assert_eq!(outer, "outerinner");
        // The outer buffer was kept, and comes back empty.
        assert!(with_kept(&SLOT, 1024, |b| b.is_empty() && b.capacity() >= 10));
    }

    #[test]
    fn a_buffer_grown_past_the_limit_is_not_kept() {
        with_kept(&SLOT, 16, |b| b.push_str(&"x".repeat(100)));
        assert_eq!(with_kept(&SLOT, 16, |b| b.capacity()), 0);
    }
}
