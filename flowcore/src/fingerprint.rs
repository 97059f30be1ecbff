//! Fingerprints of values, by which a flow run knows which task run produced a task's argument.
//!
//! A value's fingerprint is a 64-bit xxh3 hash of its JSON form. A value that serializes to a
//! JSON array also gets one fingerprint per element, so a task given one element of another
//! task's list (a `map` over it), or a list of other tasks' outputs (a fan-in), is linked too.
//!
//! Trivial values are never fingerprinted, as Prefect does not track them either: they are
//! equal by accident far more often than by descent. Trivial means `null`, `true`, `false`, an
//! integer from -5 to 256, `""`, `[]` and `{}`. Nor is a value whose JSON exceeds
//! [`MAX_BYTES`]: hashing it would cost more than it is worth.

use std::cell::RefCell;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;

use serde::Serialize;
use serde_json::ser::Formatter;

/// Values whose JSON is longer than this (16 MiB) are not tracked.
pub(crate) const MAX_BYTES: usize = 16 << 20;

/// A buffer kept by each thread for serializing, so that fingerprinting allocates nothing once
/// warm; it is shrunk after a large value.
const KEEP_BYTES: usize = 64 << 10;

/// Marks written by [`Marks`] around each element of a top-level array. JSON is UTF-8, in
/// which these bytes never occur.
const OPEN: u8 = 0xFF;
const CLOSE: u8 = 0xFE;

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

#[derive(Default)]
struct Scratch {
    bytes: Vec<u8>,
    elements: Vec<(usize, usize)>,
}

/// Calls `each` with the fingerprints of `value`: the whole value's, then each element's if it
/// is an array. Nothing for a trivial value, one too large, or one that fails to serialize.
pub(crate) fn fingerprints<T: Serialize + ?Sized>(value: &T, each: &mut dyn FnMut(u64)) {
    SCRATCH.with(|scratch| {
        // A value's `Serialize` could itself fingerprint (a task called inside it): then it
        // gets a fresh buffer rather than a panic.
        let mut fresh = Scratch::default();
        let mut borrowed = scratch.try_borrow_mut();
        let scratch = match &mut borrowed {
            Ok(s) => &mut **s,
            Err(_) => &mut fresh,
        };
        scratch.bytes.clear();
        scratch.elements.clear();
        let mut writer = Writer {
            scratch,
            open: None,
        };
        let mut ser = serde_json::Serializer::with_formatter(&mut writer, Marks { depth: 0 });
        if value.serialize(&mut ser).is_ok() {
            let Scratch { bytes, elements } = &*scratch;
            push(bytes, each);
            for &(start, end) in elements {
                push(&bytes[start..end], each);
            }
        }
        if scratch.bytes.capacity() > KEEP_BYTES {
            scratch.bytes = Vec::new();
        }
    });
}

fn push(json: &[u8], each: &mut dyn FnMut(u64)) {
    if !trivial(json) {
        each(xxhash_rust::xxh3::xxh3_64(json));
    }
}

fn trivial(json: &[u8]) -> bool {
    match json {
        b"null" | b"true" | b"false" | b"\"\"" | b"[]" | b"{}" => true,
        _ if json.len() <= 3 => std::str::from_utf8(json)
            .ok()
            .and_then(|s| s.parse::<i16>().ok())
            .is_some_and(|n| (-5..=256).contains(&n)),
        _ => false,
    }
}

/// Collects the JSON text, noting where each marked element starts and ends.
struct Writer<'a> {
    scratch: &'a mut Scratch,
    open: Option<usize>,
}

impl io::Write for Writer<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let len = self.scratch.bytes.len();
        match buf {
            [OPEN] => self.open = Some(len),
            [CLOSE] => {
                if let Some(start) = self.open.take() {
                    self.scratch.elements.push((start, len));
                }
            }
            _ if len + buf.len() > MAX_BYTES => {
                return Err(io::Error::other("too large to fingerprint"));
            }
            _ => self.scratch.bytes.extend_from_slice(buf),
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Compact JSON, with [`OPEN`] and [`CLOSE`] around each element of a top-level array.
struct Marks {
    depth: usize,
}

impl Formatter for Marks {
    fn begin_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.depth += 1;
        writer.write_all(b"[")
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.depth -= 1;
        writer.write_all(b"]")
    }

    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if !first {
            writer.write_all(b",")?;
        }
        if self.depth == 1 {
            writer.write_all(&[OPEN])?;
        }
        Ok(())
    }

    fn end_array_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        if self.depth == 1 {
            writer.write_all(&[CLOSE])?;
        }
        Ok(())
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.depth += 1;
        writer.write_all(b"{")
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.depth -= 1;
        writer.write_all(b"}")
    }
}

/// Fingerprints are hashes already: a map keyed by them needs no hashing of its own.
#[derive(Default)]
pub(crate) struct PreHashed(u64);

impl Hasher for PreHashed {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type BuildPreHashed = BuildHasherDefault<PreHashed>;

#[cfg(test)]
mod tests {
    use super::*;

    fn of<T: Serialize + ?Sized>(value: &T) -> Vec<u64> {
        let mut out = Vec::new();
        fingerprints(value, &mut |f| out.push(f));
        out
    }

    #[test]
    fn equal_values_of_different_types_match() {
        let owned = vec!["a".to_owned(), "b".to_owned()];
        let borrowed: &[&str] = &["a", "b"];
        assert_eq!(of(&owned), of(borrowed));
        assert_eq!(of(&owned).len(), 3, "the list and its two elements");
        assert_eq!(of(&owned)[1], of("a")[0]);
    }

    #[test]
    fn trivial_values_are_not_fingerprinted() {
        for v in [-5i64, 0, 1, 256] {
            assert!(of(&v).is_empty(), "{v}");
        }
        assert_eq!(of(&257).len(), 1);
        assert_eq!(of(&-6).len(), 1);
        assert!(of(&()).is_empty());
        assert!(of(&true).is_empty());
        assert!(of("").is_empty());
        assert!(of(&Vec::<u8>::new()).is_empty());
        // The list is tracked, its small elements are not.
        assert_eq!(of(&[1, 2, 3]).len(), 1);
    }

    #[test]
    fn only_top_level_elements_count() {
        let nested = vec![vec![1000, 2000], vec![3000]];
        // The whole, and the two inner lists; not 1000, 2000 or 3000.
        assert_eq!(of(&nested).len(), 3);
        assert_eq!(of(&nested)[2], of(&vec![3000])[0]);
        // An object's fields are not elements.
        #[derive(Serialize)]
        struct Row {
            id: u32,
            tags: Vec<String>,
        }
        let row = Row {
            id: 7000,
            tags: vec!["x".into()],
        };
        assert_eq!(of(&row).len(), 1);
    }

    #[test]
    fn a_value_too_large_is_not_fingerprinted() {
        let big = "x".repeat(MAX_BYTES);
        assert!(of(&big).is_empty());
        assert_eq!(of(&"x".repeat(1000)).len(), 1);
    }
}
