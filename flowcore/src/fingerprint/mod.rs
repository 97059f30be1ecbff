//! Fingerprints of values, by which a flow run knows which task run produced a task's argument.
//!
//! A value's fingerprint is a 64-bit xxh3 hash of its form in serde's data model, which is its
//! JSON form without the text: two values whose JSON is the same have the same fingerprint
//! (`Vec<String>` and `&[&str]`, a `u16` and an `i64`, a field-less enum variant and its name
//! as a string), and no JSON is written to find it. A value that serializes to a JSON array
//! also gets one fingerprint per element, so a task given one element of another task's list (a
//! `map` over it), or a list of other tasks' outputs (a fan-in), is linked too.
//!
//! Trivial values are never fingerprinted, as Prefect does not track them either: they are
//! equal by accident far more often than by descent. Trivial means `null`, `true`, `false`, an
//! integer from -5 to 256, `""`, `[]` and `{}`. Nor is a value whose form exceeds
//! [`MAX_BYTES`]: hashing it would cost more than it is worth.

use std::cell::RefCell;
use std::fmt::{self, Display};
use std::hash::{BuildHasherDefault, Hasher};

use serde::Serialize;
use serde::ser::{self, Serializer};

/// Values whose encoded form is longer than this (16 MiB) are not tracked.
pub(crate) const MAX_BYTES: usize = 16 << 20;

/// A buffer kept by each thread for encoding, so that fingerprinting allocates nothing once
/// warm; it is shrunk after a large value.
const KEEP_BYTES: usize = 64 << 10;

/// The tags of the encoding: each value starts with one, a string's bytes follow its length,
/// and lists and maps end with [`END`], so the encoding of a value is never the start of
/// another's (a list of `"ab"` is not a list of `"a"` and `"b"`).
const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
/// An integer that fits an `i64`, as 8 bytes little-endian.
const INT: u8 = 3;
/// An integer beyond `i64`, as 16 bytes little-endian.
const WIDE: u8 = 4;
/// A finite float, as the 8 bytes of the `f64` its shortest decimal form reads as.
const FLOAT: u8 = 5;
/// A string, its length as 8 bytes, then its UTF-8.
const STR: u8 = 6;
const LIST: u8 = 7;
const MAP: u8 = 8;
const END: u8 = 9;

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

#[derive(Default)]
struct Scratch {
    bytes: Vec<u8>,
    elements: Vec<(usize, usize)>,
}

/// Calls `each` with the fingerprints of `value`: the whole value's, then each element's if it
/// is a list. Nothing for a trivial value, one too large, or one that fails to serialize (as
/// one JSON cannot hold: a map whose keys are lists).
pub(crate) fn fingerprints<T: Serialize + ?Sized>(value: &T, each: &mut dyn FnMut(u64)) {
    match scalar::Form::of(value) {
        Some(form) => push(form.as_slice(), each),
        None => encoded(value, each),
    }
}

/// [`fingerprints`] of any value, through the thread's buffer.
fn encoded<T: Serialize + ?Sized>(value: &T, each: &mut dyn FnMut(u64)) {
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
        let mut encoder = Encoder {
            scratch,
            depth: 0,
            lists: 0,
        };
        if value.serialize(&mut encoder).is_ok() {
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

fn push(encoded: &[u8], each: &mut dyn FnMut(u64)) {
    if !trivial(encoded) {
        each(xxhash_rust::xxh3::xxh3_64(encoded));
    }
}

fn trivial(encoded: &[u8]) -> bool {
    match encoded {
        [NULL] | [FALSE] | [TRUE] | [LIST, END] | [MAP, END] => true,
        [STR, len @ ..] => len == 0u64.to_le_bytes(),
        [INT, n @ ..] => {
            <[u8; 8]>::try_from(n).is_ok_and(|n| (-5..=256).contains(&i64::from_le_bytes(n)))
        }
        _ => false,
    }
}

/// Why a value is not fingerprinted.
#[derive(Debug)]
struct Untracked;

impl Display for Untracked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not fingerprinted")
    }
}

impl std::error::Error for Untracked {}

impl ser::Error for Untracked {
    fn custom<T: Display>(_: T) -> Self {
        Untracked
    }
}

/// Writes a value's encoding, noting where each element of a top-level list starts and ends.
struct Encoder<'a> {
    scratch: &'a mut Scratch,
    /// How many lists and maps the value being written is inside.
    depth: usize,
    /// Of those, how many are lists whose elements are being written (only depth 1 counts).
    lists: usize,
}

/// Where a value's encoding goes: the thread's buffer ([`Encoder`]) or, for a scalar, the
/// stack ([`scalar::Form`]). The encodings of scalars are written here once for both, so a
/// value's fingerprint is the same whichever took it.
trait Sink {
    fn put(&mut self, bytes: &[u8]) -> Result<(), Untracked>;

    fn int(&mut self, n: i128) -> Result<(), Untracked> {
        match i64::try_from(n) {
            Ok(n) => {
                let mut bytes = [INT; 9];
                bytes[1..].copy_from_slice(&n.to_le_bytes());
                self.put(&bytes)
            }
            Err(_) => {
                let mut bytes = [WIDE; 17];
                bytes[1..].copy_from_slice(&n.to_le_bytes());
                self.put(&bytes)
            }
        }
    }

    fn wide(&mut self, n: u128) -> Result<(), Untracked> {
        match i128::try_from(n) {
            Ok(n) => self.int(n),
            // Beyond i128: written as its own kind, never equal to a smaller integer's form.
            Err(_) => {
                self.put(&[WIDE, WIDE])?;
                self.put(&n.to_le_bytes())
            }
        }
    }

    /// JSON writes a float by its shortest decimal form, and NaN and the infinities as `null`.
    fn float(&mut self, shortest: Option<f64>) -> Result<(), Untracked> {
        match shortest {
            Some(f) => {
                let mut bytes = [FLOAT; 9];
                bytes[1..].copy_from_slice(&f.to_bits().to_le_bytes());
                self.put(&bytes)
            }
            None => self.put(&[NULL]),
        }
    }

    fn str(&mut self, s: &str) -> Result<(), Untracked> {
        let mut head = [STR; 9];
        head[1..].copy_from_slice(&(s.len() as u64).to_le_bytes());
        self.put(&head)?;
        self.put(s.as_bytes())
    }
}

impl Sink for Encoder<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), Untracked> {
        if self.scratch.bytes.len() + bytes.len() > MAX_BYTES {
            return Err(Untracked);
        }
        self.scratch.bytes.extend_from_slice(bytes);
        Ok(())
    }
}

impl Encoder<'_> {
    fn open(&mut self, tag: u8) -> Result<&mut Self, Untracked> {
        self.put(&[tag])?;
        self.depth += 1;
        if tag == LIST && self.depth == 1 {
            self.lists = 1;
        }
        Ok(self)
    }

    fn close(&mut self) -> Result<(), Untracked> {
        self.depth -= 1;
        self.put(&[END])
    }

    /// Writes an element of a list, marking it when the list is the value itself.
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Untracked> {
        let marked = self.depth == 1 && self.lists == 1;
        let start = self.scratch.bytes.len();
        value.serialize(&mut *self)?;
        if marked {
            let end = self.scratch.bytes.len();
            self.scratch.elements.push((start, end));
        }
        Ok(())
    }

    /// Opens `{"variant": …}`, as JSON writes a variant with content.
    fn variant(&mut self, variant: &str) -> Result<(), Untracked> {
        self.open(MAP)?;
        self.str(variant)
    }
}

fn shortest_f32(v: f32) -> Option<f64> {
    v.is_finite()
        .then(|| ryu::Buffer::new().format_finite(v).parse().ok())
        .flatten()
}

/// The methods of a serializer into a [`Sink`] for the values that are scalars in JSON,
/// written once for the general encoder and for the stack's ([`scalar::Form`]), so that both
/// give a scalar the same bytes. Integers of every width are one kind: JSON writes `7000u16`
/// and `7000i64` alike.
macro_rules! scalar_methods {
    () => {
        fn serialize_bool(self, v: bool) -> Result<(), Untracked> {
            self.put(&[if v { TRUE } else { FALSE }])
        }
        scalar_methods!(@integers
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
        fn serialize_str(self, v: &str) -> Result<(), Untracked> {
            self.str(v)
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
    };
    (@integers $($method:ident: $ty:ty),* $(,)?) => {
        $(
            fn $method(self, v: $ty) -> Result<(), Untracked> {
                self.int(v.into())
            }
        )*
    };
}

mod scalar;

impl Serializer for &mut Encoder<'_> {
    type Ok = ();
    type Error = Untracked;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    scalar_methods!();

    /// As JSON writes bytes: a list of numbers.
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Untracked> {
        let list = self.open(LIST)?;
        for b in v {
            list.element(b)?;
        }
        list.close()
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Untracked> {
        self.variant(variant)?;
        value.serialize(&mut *self)?;
        self.close()
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self, Untracked> {
        self.open(LIST)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self, Untracked> {
        self.open(LIST)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, Untracked> {
        self.open(LIST)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self, Untracked> {
        self.variant(variant)?;
        self.open(LIST)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self, Untracked> {
        self.open(MAP)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Untracked> {
        self.open(MAP)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self, Untracked> {
        self.variant(variant)?;
        self.open(MAP)
    }
}

/// The parts of a list (a sequence, a tuple, a tuple struct, a tuple variant's content): each
/// element through [`Encoder::element`]; `end` closes what the part opened.
macro_rules! list_part {
    ($part:ident, $add:ident, closes $closes:literal) => {
        impl ser::$part for &mut Encoder<'_> {
            type Ok = ();
            type Error = Untracked;
            fn $add<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Untracked> {
                self.element(value)
            }
            fn end(self) -> Result<(), Untracked> {
                (0..$closes).try_for_each(|_| self.close())
            }
        }
    };
}

list_part!(SerializeSeq, serialize_element, closes 1);
list_part!(SerializeTuple, serialize_element, closes 1);
list_part!(SerializeTupleStruct, serialize_field, closes 1);
// The list, then the map around it (`{"variant": [...]}`).
list_part!(SerializeTupleVariant, serialize_field, closes 2);

/// The parts of a struct, or a struct variant's content: a map of its fields by name.
macro_rules! struct_part {
    ($part:ident, closes $closes:literal) => {
        impl ser::$part for &mut Encoder<'_> {
            type Ok = ();
            type Error = Untracked;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), Untracked> {
                self.str(key)?;
                value.serialize(&mut **self)
            }
            fn end(self) -> Result<(), Untracked> {
                (0..$closes).try_for_each(|_| self.close())
            }
        }
    };
}

struct_part!(SerializeStruct, closes 1);
// The fields' map, then the map around it (`{"variant": {...}}`).
struct_part!(SerializeStructVariant, closes 2);

impl ser::SerializeMap for &mut Encoder<'_> {
    type Ok = ();
    type Error = Untracked;
    /// A key as JSON writes it: a string as it is, a number or a boolean as its text; any
    /// other key (a list, a map, `null`) fails, as it does in JSON.
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Untracked> {
        let start = self.scratch.bytes.len();
        key.serialize(&mut **self)?;
        let encoded = self.scratch.bytes.split_off(start);
        let text = match encoded.as_slice() {
            [STR, ..] => return self.put(&encoded),
            [TRUE] => "true".to_owned(),
            [FALSE] => "false".to_owned(),
            [INT, n @ ..] => i64::from_le_bytes(n.try_into().map_err(|_| Untracked)?).to_string(),
            [WIDE, WIDE, n @ ..] => {
                u128::from_le_bytes(n.try_into().map_err(|_| Untracked)?).to_string()
            }
            [WIDE, n @ ..] => i128::from_le_bytes(n.try_into().map_err(|_| Untracked)?).to_string(),
            [FLOAT, f @ ..] => {
                let f = f64::from_bits(u64::from_le_bytes(f.try_into().map_err(|_| Untracked)?));
                ryu::Buffer::new().format_finite(f).to_owned()
            }
            _ => return Err(Untracked),
        };
        self.str(&text)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Untracked> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Untracked> {
        self.close()
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
    fn values_whose_json_is_the_same_match() {
        // Integers of any type, by value.
        assert_eq!(of(&7000u16), of(&7000i64));
        assert_eq!(of(&7000u128), of(&7000i32));
        assert_eq!(of(&u64::MAX), of(&u128::from(u64::MAX)));
        // A char is a string, a field-less variant its name, a newtype its content, `Some` its
        // value.
        assert_eq!(of(&'x'), of("x"));
        assert_eq!(of(&Colour::Red), of("Red"));
        assert_eq!(of(&Meters(900)), of(&900));
        assert_eq!(of(&Some("abc")), of("abc"));
        // A float by its shortest decimal form: `0.1f32` is JSON's `0.1`, as `0.1f64` is.
        assert_eq!(of(&0.1f32), of(&0.1f64));
        assert!(of(&f64::NAN).is_empty(), "NaN is JSON's null");
        // A struct is the object of its fields; a map's integer keys are strings in JSON.
        #[derive(Serialize)]
        struct Point {
            x: u32,
            y: u32,
        }
        let map: std::collections::BTreeMap<&str, u32> = [("x", 1000), ("y", 2000)].into();
        assert_eq!(of(&Point { x: 1000, y: 2000 }), of(&map));
        // A map's keys are strings in JSON: numbers and booleans as their text.
        assert_eq!(of(&OneEntry(1u32, 300)), of(&OneEntry("1", 300)));
        assert_eq!(of(&OneEntry(-7i64, 300)), of(&OneEntry("-7", 300)));
        assert_eq!(
            of(&OneEntry(u128::MAX, 300)),
            of(&OneEntry(u128::MAX.to_string(), 300))
        );
        assert_eq!(
            of(&OneEntry(i128::MIN, 300)),
            of(&OneEntry(i128::MIN.to_string(), 300))
        );
        assert_eq!(of(&OneEntry(true, 300)), of(&OneEntry("true", 300)));
        assert_eq!(of(&OneEntry(0.5f64, 300)), of(&OneEntry("0.5", 300)));
        assert_eq!(of(&OneEntry('k', 300)), of(&OneEntry("k", 300)));
        assert!(of(&OneEntry((), 300)).is_empty(), "a null key has no JSON");
        // Bytes are a list of numbers.
        assert_eq!(of(&Bytes(&[232, 2])), of(&[232u8, 2]));
    }

    #[derive(Serialize)]
    enum Colour {
        Red,
    }

    #[derive(Serialize)]
    struct Meters(u32);

    /// A map of one entry, whatever its key's type.
    struct OneEntry<K, V>(K, V);

    impl<K: Serialize, V: Serialize> Serialize for OneEntry<K, V> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap as _;
            let mut map = s.serialize_map(Some(1))?;
            map.serialize_entry(&self.0, &self.1)?;
            map.end()
        }
    }

    /// Serialized as serde's bytes.
    struct Bytes<'a>(&'a [u8]);

    impl Serialize for Bytes<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }

    #[test]
    fn values_whose_json_differs_do_not_match() {
        assert_ne!(of(&1000), of("1000"));
        assert_ne!(of(&1000), of(&1000.0));
        assert_ne!(of(&vec!["ab"]), of(&vec!["a", "b"]));
        assert_ne!(of(&vec![vec![300], vec![]]), of(&vec![vec![], vec![300]]));
        assert_ne!(of(&(300, 400)), of(&(400, 300)));
        assert_ne!(of(&u128::MAX), of(&i128::MIN));
        // A map whose keys are lists has no JSON: not fingerprinted.
        let odd: std::collections::BTreeMap<Vec<u32>, u32> = [(vec![1], 1000)].into();
        assert!(of(&odd).is_empty());
    }

    /// What the general encoder gives for `value`, bypassing the scalars' own path.
    fn encoded_of<T: Serialize + ?Sized>(value: &T) -> Vec<u64> {
        let mut out = Vec::new();
        encoded(value, &mut |f| out.push(f));
        out
    }

    #[test]
    fn a_scalar_has_the_fingerprint_the_general_encoder_gives_it() {
        let short = "s".repeat(64);
        let long = "l".repeat(65);
        let cases: Vec<(&str, Vec<u64>, Vec<u64>)> = vec![
            ("u32", of(&7000u32), encoded_of(&7000u32)),
            ("i64", of(&-7000i64), encoded_of(&-7000i64)),
            ("u64::MAX", of(&u64::MAX), encoded_of(&u64::MAX)),
            ("i128::MIN", of(&i128::MIN), encoded_of(&i128::MIN)),
            ("u128::MAX", of(&u128::MAX), encoded_of(&u128::MAX)),
            ("f32", of(&0.1f32), encoded_of(&0.1f32)),
            ("f64", of(&2.5f64), encoded_of(&2.5f64)),
            ("char", of(&'k'), encoded_of(&'k')),
            ("str", of("abc"), encoded_of("abc")),
            ("64 bytes", of(&short), encoded_of(&short)),
            ("65 bytes", of(&long), encoded_of(&long)),
            ("variant", of(&Colour::Red), encoded_of(&Colour::Red)),
            ("newtype", of(&Meters(900)), encoded_of(&Meters(900))),
            ("Some", of(&Some("abc")), encoded_of(&Some("abc"))),
            ("false", of(&false), encoded_of(&false)),
            ("trivial", of(&7u8), encoded_of(&7u8)),
        ];
        for (what, fast, general) in cases {
            assert_eq!(fast, general, "{what}");
        }
        assert_eq!(of(&7000u32).len(), 1);
        // Not scalars: the general encoder's fingerprints, elements included.
        assert_eq!(of(&vec![1000, 2000]), encoded_of(&vec![1000, 2000]));
        assert_eq!(of(&vec![1000, 2000]).len(), 3);
        assert_eq!(of(&Bytes(&[232, 2])), encoded_of(&[232u8, 2]));
    }

    #[test]
    fn a_value_too_large_is_not_fingerprinted() {
        let big = "x".repeat(MAX_BYTES);
        assert!(of(&big).is_empty());
        assert_eq!(of(&"x".repeat(1000)).len(), 1);
    }
}
