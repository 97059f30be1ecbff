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

macro_rules! integers {
    ($($method:ident: $ty:ty),* $(,)?) => {
        $(
            fn $method(self, v: $ty) -> Result<(), Untracked> {
                self.int(v.into())
            }
        )*
    };
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

    fn serialize_bool(self, v: bool) -> Result<(), Untracked> {
        self.put(&[if v { TRUE } else { FALSE }])
    }
    integers!(
        serialize_i8: i8,
        serialize_i16: i16,
        serialize_i32: i32,
        serialize_i64: i64,
        serialize_i128: i128,
        serialize_u8: u8,
        serialize_u16: u16,
        serialize_u32: u32,
        serialize_u64: u64,
    );
    fn serialize_u128(self, v: u128) -> Result<(), Untracked> {
        self.wide(v)
    }
    fn serialize_f32(self, v: f32) -> Result<(), Untracked> {
        self.float(shortest_f32(v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), Untracked> {
        self.float(v.is_finite().then_some(v))
    }
    fn serialize_char(self, v: char) -> Result<(), Untracked> {
        self.str(v.encode_utf8(&mut [0; 4]))
    }
    /// A string longer than [`SHORT`] does not fit: `put` fails, and the general encoder
    /// takes it.
    fn serialize_str(self, v: &str) -> Result<(), Untracked> {
        self.str(v)
    }
    /// A list of numbers, as JSON writes bytes.
    fn serialize_bytes(self, _: &[u8]) -> Result<(), Untracked> {
        Err(Untracked)
    }
    fn serialize_none(self) -> Result<(), Untracked> {
        self.put(&[NULL])
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Untracked> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Untracked> {
        self.put(&[NULL])
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Untracked> {
        self.put(&[NULL])
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), Untracked> {
        self.str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Untracked> {
        value.serialize(self)
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
