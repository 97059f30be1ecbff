//! The fingerprint of a scalar (a number, a short string, a bool, a unit variant, or one of these
//! in a newtype or `Some`), encoded on the stack.
//!
//! Most values passed between tasks are scalars: an id, a count, a path. Their encoding is a
//! few bytes, and taking it through the thread's buffer (its `RefCell`, its growth check, its
//! clearing) cost more than the hash; a task call takes two or three fingerprints (its
//! arguments, then its output). A value that is not a scalar fails here at its first step
//! (`serialize_seq`, `serialize_struct`, …) and is encoded by the general [`Encoder`] instead,
//! which writes scalars through the same [`Sink`] methods, so both give the same bytes.
//!
//! [`Encoder`]: super::Encoder

use serde::Serialize;
use serde::ser::{Impossible, Serializer};

use super::{FALSE, NULL, Sink, TRUE, Untracked, shortest_f32};

/// Strings up to this many bytes are encoded here; longer ones by the general encoder.
const SHORT: usize = 64;

/// A scalar's encoding: a tag, at most 17 bytes after it, or a string's length and bytes.
pub(super) struct Form {
    bytes: [u8; 9 + SHORT],
    len: usize,
}

impl Form {
    /// The encoding of `value` if it is a scalar.
    pub(super) fn of<T: Serialize + ?Sized>(value: &T) -> Option<Form> {
        let mut form = Form {
            bytes: [0; 9 + SHORT],
            len: 0,
        };
        value.serialize(&mut form).ok()?;
        Some(form)
    }

    pub(super) fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Sink for Form {
    fn put(&mut self, bytes: &[u8]) -> Result<(), Untracked> {
        let end = self.len + bytes.len();
        self.bytes
            .get_mut(self.len..end)
            .ok_or(Untracked)?
            .copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }
}

/// Everything that is not a scalar.
type NotScalar = Impossible<(), Untracked>;

impl Serializer for &mut Form {
    type Ok = ();
    type Error = Untracked;
    type SerializeSeq = NotScalar;
    type SerializeTuple = NotScalar;
    type SerializeTupleStruct = NotScalar;
    type SerializeTupleVariant = NotScalar;
    type SerializeMap = NotScalar;
    type SerializeStruct = NotScalar;
    type SerializeStructVariant = NotScalar;

    // A string longer than `SHORT` does not fit: `put` fails, and the general encoder
    // takes it.
    scalar_methods!();

    /// A list of numbers, as JSON writes bytes.
    fn serialize_bytes(self, _: &[u8]) -> Result<(), Untracked> {
        Err(Untracked)
    }
    /// `{"variant": …}`: a map.
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Untracked> {
        Err(Untracked)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<NotScalar, Untracked> {
        Err(Untracked)
    }
    fn serialize_tuple(self, _: usize) -> Result<NotScalar, Untracked> {
        Err(Untracked)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<NotScalar, Untracked> {
        Err(Untracked)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<NotScalar, Untracked> {
        Err(Untracked)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<NotScalar, Untracked> {
        Err(Untracked)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<NotScalar, Untracked> {
        Err(Untracked)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<NotScalar, Untracked> {
        Err(Untracked)
    }
}
