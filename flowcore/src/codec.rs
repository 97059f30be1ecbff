//! Outputs as JSON: for cached results and for the outputs a resumed flow run reuses.
//!
//! Whether an output can be stored is known only for the concrete type, so the macros ask
//! with [`Probe`] (autoref specialisation): `(&&Probe::<K, R>::new()).codec()` is `Some` when
//! the stored value (`R`, or `T` of `Result<T, E>`) is `Serialize + DeserializeOwned`, and
//! `None` otherwise, without requiring it.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::outcome::Outcome;

/// What is given an output's JSON, in a buffer it may only read.
type Json<'a> = dyn FnMut(&str) + 'a;

/// How to store an output of type `R` and read it back.
#[doc(hidden)]
pub struct Codec<R> {
    /// Calls its closure with a successful output's JSON (not for a failure, nor for a value
    /// that will not serialize), so that the caller keeps it in the form it needs.
    encode: fn(&R, &mut Json<'_>),
    decode: fn(&str) -> Option<R>,
    fingerprints: fn(&R, &mut dyn FnMut(u64)),
}

impl<R> Clone for Codec<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for Codec<R> {}

impl<R> Codec<R> {
    /// The codec of outputs judged by `K`: only successful values are stored.
    pub fn of<K>() -> Self
    where
        K: Outcome<R>,
        K::Value: Serialize + DeserializeOwned,
    {
        Codec {
            encode: |out, with| {
                if let Some(value) = K::value(out) {
                    with_json(value, with);
                }
            },
            decode: |json| serde_json::from_str(json).ok().map(K::from_value),
            fingerprints: |out, each| {
                if let Some(value) = K::value(out) {
                    crate::fingerprint::fingerprints(value, each);
                }
            },
        }
    }

    /// The fingerprints of a successful output's value (see [`crate::fingerprint`]).
    pub(crate) fn fingerprints(&self, out: &R, each: &mut dyn FnMut(u64)) {
        (self.fingerprints)(out, each)
    }

    /// The output as JSON; `None` for a failure or a value that will not serialize.
    pub(crate) fn encode(&self, out: &R) -> Option<String> {
        self.encode_as(out, str::to_owned)
    }

    /// The output's JSON made into a `T` by `make`, which sees it in a buffer the thread keeps:
    /// for a task run's output, the store's own form of it, with no string of its own between.
    pub(crate) fn encode_as<T>(&self, out: &R, make: impl FnOnce(&str) -> T) -> Option<T> {
        let (mut make, mut made) = (Some(make), None);
        (self.encode)(out, &mut |json| made = make.take().map(|make| make(json)));
        made
    }

    /// The output read back; `None` if the JSON no longer fits the type.
    pub(crate) fn decode(&self, json: &str) -> Option<R> {
        (self.decode)(json)
    }
}

/// Calls `with` with `value` as JSON, written in a buffer the thread keeps, so that the caller
/// copies it once into what it keeps, where `serde_json::to_string` would start at 128 bytes and
/// the store would shrink it with a second allocation and a copy.
fn with_json<T: Serialize + ?Sized>(value: &T, with: &mut Json<'_>) {
    thread_local! {
        static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
    }
    crate::scratch::with_kept(&SCRATCH, crate::scratch::KEPT_CAPACITY, |buf| {
        let written = serde_json::to_writer(&mut *buf, value).is_ok();
        // serde_json writes UTF-8 only: checked rather than trusted, and never replaced.
        if written && let Ok(json) = std::str::from_utf8(buf) {
            with(json);
        }
    });
}

/// Asks, for concrete `K` and `R`, whether outputs can be stored.
#[doc(hidden)]
pub struct Probe<K, R>(PhantomData<fn() -> (K, R)>);

impl<K, R> Probe<K, R> {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Probe(PhantomData)
    }
}

/// Chosen by method resolution when the stored value is serializable.
#[doc(hidden)]
pub trait Storable<R> {
    fn codec(&self) -> Option<Codec<R>>;
}

impl<K, R> Storable<R> for &Probe<K, R>
where
    K: Outcome<R>,
    K::Value: Serialize + DeserializeOwned,
{
    fn codec(&self) -> Option<Codec<R>> {
        Some(Codec::of::<K>())
    }
}

/// The fallback: outputs of this type are not stored.
#[doc(hidden)]
pub trait NotStorable<R> {
    fn codec(&self) -> Option<Codec<R>>;
}

impl<K, R> NotStorable<R> for Probe<K, R> {
    fn codec(&self) -> Option<Codec<R>> {
        None
    }
}

/// Asks, for a concrete argument type, whether it can be recorded as a flow parameter.
#[doc(hidden)]
pub struct ArgProbe<T: ?Sized>(PhantomData<fn(&T)>);

impl<T: ?Sized> ArgProbe<T> {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        ArgProbe(PhantomData)
    }
}

#[doc(hidden)]
pub trait Recordable<T: ?Sized> {
    fn json(&self, arg: &T) -> Option<serde_json::Value>;

    /// The argument as a value whose producer can be looked up (see [`crate::fingerprint`]).
    fn trace<'a>(&self, arg: &'a T) -> Option<&'a dyn TraceArg>;
}

impl<T: Serialize> Recordable<T> for &ArgProbe<T> {
    fn json(&self, arg: &T) -> Option<serde_json::Value> {
        serde_json::to_value(arg).ok()
    }

    fn trace<'a>(&self, arg: &'a T) -> Option<&'a dyn TraceArg> {
        Some(arg)
    }
}

#[doc(hidden)]
pub trait NotRecordable<T: ?Sized> {
    fn json(&self, arg: &T) -> Option<serde_json::Value>;

    fn trace<'a>(&self, arg: &'a T) -> Option<&'a dyn TraceArg>;
}

impl<T: ?Sized> NotRecordable<T> for ArgProbe<T> {
    fn json(&self, _: &T) -> Option<serde_json::Value> {
        None
    }

    fn trace<'a>(&self, _: &'a T) -> Option<&'a dyn TraceArg> {
        None
    }
}

/// A task argument that serializes, so its fingerprints can be taken.
#[doc(hidden)]
pub trait TraceArg {
    fn fingerprints(&self, each: &mut dyn FnMut(u64));
}

impl<T: Serialize> TraceArg for T {
    fn fingerprints(&self, each: &mut dyn FnMut(u64)) {
        crate::fingerprint::fingerprints(self, each);
    }
}

/// A flow call's parameters as a JSON object, its keys in order as `serde_json`'s map keeps
/// them; arguments that cannot be serialized are left out.
///
/// Written straight from the arguments' values: a map of them would copy every name and value
/// first, which was a seventh of a one-task flow run with two parameters.
#[doc(hidden)]
pub fn parameters(args: &[(&str, Option<serde_json::Value>)]) -> Option<String> {
    let mut kept: smallvec::SmallVec<[(&str, &serde_json::Value); 8]> = args
        .iter()
        .filter_map(|(name, value)| Some((*name, value.as_ref()?)))
        .collect();
    // A function's parameters have distinct names, so no key is written twice.
    kept.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut json = Vec::with_capacity(2 + kept.len() * 16);
    json.push(b'{');
    // Read in place: moved into an iterator, the list (200 bytes) would be copied.
    for (i, &(name, value)) in kept.iter().enumerate() {
        if i > 0 {
            json.push(b',');
        }
        serde_json::to_writer(&mut json, name).ok()?;
        json.push(b':');
        serde_json::to_writer(&mut json, value).ok()?;
    }
    json.push(b'}');
    String::from_utf8(json).ok()
}

#[cfg(test)]
// The extra borrows are what picks the impl; clippy cannot know.
#[allow(clippy::needless_borrow)]
mod tests {
    use super::*;
    use crate::outcome::{Fallible, Plain};

    struct Opaque;

    #[test]
    fn serializable_outputs_get_a_codec() {
        #[allow(unused_imports)]
        use super::{NotStorable as _, Storable as _};
        let codec = (&&Probe::<Fallible, Result<u32, String>>::new())
            .codec()
            .unwrap();
        assert_eq!(codec.encode(&Ok(7)).as_deref(), Some("7"));
        assert_eq!(codec.encode(&Err("no".into())), None);
        assert_eq!(codec.decode("7"), Some(Ok(7)));
        assert!((&&Probe::<Plain, Opaque>::new()).codec().is_none());
    }

    #[test]
    fn parameters_keep_what_serializes() {
        #[allow(unused_imports)]
        use super::{NotRecordable as _, Recordable as _};
        let url = String::from("http://x");
        let params = parameters(&[
            ("url", (&&ArgProbe::<String>::new()).json(&url)),
            ("conn", (&&ArgProbe::<Opaque>::new()).json(&Opaque)),
        ]);
        assert_eq!(params.as_deref(), Some(r#"{"url":"http://x"}"#));
    }

    #[test]
    fn parameters_are_the_json_of_serde_json_s_map_of_them() {
        let args = [
            ("zone", Some(serde_json::json!("eu \"west\"\n"))),
            ("n", Some(serde_json::json!(3))),
            ("opaque", None),
            (
                "config",
                Some(serde_json::json!({"b": [1, 2.5, null], "a": true})),
            ),
        ];
        let map: serde_json::Map<String, serde_json::Value> = args
            .iter()
            .filter_map(|(name, value)| Some(((*name).to_owned(), value.clone()?)))
            .collect();
        assert_eq!(parameters(&args), serde_json::to_string(&map).ok());
        assert_eq!(parameters(&[]).as_deref(), Some("{}"));
    }
}
