//! Cached task results: `#[task(cache_for = "1d")]`.
//!
//! A cached task's key is its name plus a stable 128-bit hash (xxh3) of its arguments
//! serialized with serde, or the string returned by its `cache_key` function. A call whose key
//! has an unexpired entry returns the stored result without running the body and ends in
//! state `Cached`. Results are stored as JSON text, and only successful ones (`Ok` values).
//!
//! Entries live in this process's memory. Expiry follows tokio's clock, like every timestamp
//! in flowcore, so tests can step over a day with `tokio::time::advance`.
//!
//! Hashing serialized arguments means a `HashMap` argument, whose order varies from run to
//! run, gives varying keys: use a `BTreeMap`, or a `cache_key` function.

use std::sync::LazyLock;
use std::time::Duration;

use dashmap::DashMap;
use serde::Serialize;
use serde::de::DeserializeOwned;
use xxhash_rust::xxh3::Xxh3;

use crate::clock::Timestamp;
use crate::outcome::Outcome;

struct Entry {
    json: String,
    expires_at: Timestamp,
}

/// Sharded, so tasks on different threads rarely wait for each other.
static ENTRIES: LazyLock<DashMap<String, Entry>> = LazyLock::new(DashMap::new);

/// The stored result for `key`, if it has not expired.
pub(crate) fn get(key: &str, now: Timestamp) -> Option<String> {
    let entry = ENTRIES.get(key)?;
    if entry.expires_at > now {
        return Some(entry.json.clone());
    }
    drop(entry);
    ENTRIES.remove_if(key, |_, e| e.expires_at <= now);
    None
}

pub(crate) fn put(key: String, json: String, expires_at: Timestamp) {
    ENTRIES.insert(key, Entry { json, expires_at });
}

/// Removes every cached result of the task named `task`; returns how many there were.
///
/// ```
/// assert_eq!(flowcore::cache::clear_task("never-cached"), 0);
/// ```
pub fn clear_task(task: &str) -> usize {
    // Counted as removed, not as a difference of lengths: other threads may store entries
    // meanwhile.
    let mut removed = 0;
    ENTRIES.retain(|key, _| {
        let keep = task_of(key) != Some(task);
        removed += usize::from(!keep);
        keep
    });
    removed
}

/// Removes every cached result; returns how many there were.
pub fn clear() -> usize {
    let mut removed = 0;
    ENTRIES.retain(|_, _| {
        removed += 1;
        false
    });
    removed
}

/// The number of cached results, expired ones included until they are next looked up.
pub fn len() -> usize {
    ENTRIES.len()
}

/// An entry's key: `"{len}:{task}:{key}"`. The task name's length comes first, so that a `:`
/// in a task's name or in a `cache_key` result (a URL) can neither make two tasks' keys equal
/// nor hide the task's name from [`clear_task`].
fn entry_key(task: &str, key: impl std::fmt::Display) -> String {
    format!("{}:{task}:{key}", task.len())
}

fn task_of(key: &str) -> Option<&str> {
    let (len, rest) = key.split_once(':')?;
    rest.get(..len.parse().ok()?)
}

/// How one call of a cached task reads and writes the cache.
#[doc(hidden)]
pub struct Cache<R> {
    pub(crate) key: String,
    pub(crate) ttl: Duration,
    encode: fn(&R) -> Option<String>,
    decode: fn(&str) -> Option<R>,
}

impl<R> Cache<R> {
    /// Keyed by the task's name and `key`: an [`ArgsKey`] of the call's arguments, or what the
    /// task's `cache_key` function returned.
    pub fn new<K>(task: &str, ttl: Duration, key: impl std::fmt::Display) -> Self
    where
        K: Outcome<R>,
        K::Value: Serialize + DeserializeOwned,
    {
        Self::with_key::<K>(entry_key(task, key), ttl)
    }

    fn with_key<K>(key: String, ttl: Duration) -> Self
    where
        K: Outcome<R>,
        K::Value: Serialize + DeserializeOwned,
    {
        Cache {
            key,
            ttl,
            encode: |out| K::value(out).and_then(|v| serde_json::to_string(v).ok()),
            decode: |json| serde_json::from_str(json).ok().map(K::from_value),
        }
    }

    /// The cached output, if there is a live entry that still decodes to the output type.
    pub(crate) fn lookup(&self, now: Timestamp) -> Option<R> {
        (self.decode)(&get(&self.key, now)?)
    }

    /// Stores a successful output.
    pub(crate) fn store(&self, out: &R, now: Timestamp) {
        if let Some(json) = (self.encode)(out) {
            let expires_at = now
                .checked_add(self.ttl)
                .unwrap_or(Timestamp::from_micros(i64::MAX));
            put(self.key.clone(), json, expires_at);
        }
    }
}

/// An argument of a task with `cache_for` and no `cache_key`: part of the cache key.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` must implement `serde::Serialize`: with `cache_for`, the arguments make the cache key",
    label = "not `Serialize`",
    note = "derive `Serialize` for it, or set `cache_key = key_fn` (`fn(&A, &B, …) -> impl Display`) to compute the key yourself"
)]
pub trait CacheArg {
    /// Writes the argument as JSON, the text the key is a hash of.
    fn write_json(&self, out: &mut dyn std::io::Write);
}

#[diagnostic::do_not_recommend]
impl<T: Serialize + ?Sized> CacheArg for T {
    fn write_json(&self, out: &mut dyn std::io::Write) {
        // Writing into a hasher cannot fail on I/O; a `Serialize` impl that errors still
        // yields a key (of what it wrote), which is no worse than a custom key function.
        let _ = serde_json::to_writer(out, self);
    }
}

/// The default key of a call: the xxh3-128 hash of its arguments written as a JSON array.
#[doc(hidden)]
pub struct ArgsKey<'a>(pub &'a [&'a dyn CacheArg]);

impl std::fmt::Display for ArgsKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut hasher = HashWriter(Xxh3::new());
        hasher.0.update(b"[");
        for (i, arg) in self.0.iter().enumerate() {
            if i > 0 {
                hasher.0.update(b",");
            }
            arg.write_json(&mut hasher);
        }
        hasher.0.update(b"]");
        write!(f, "{:032x}", hasher.0.digest128())
    }
}

struct HashWriter(Xxh3);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Plain;

    fn key_of(args: &[&dyn CacheArg]) -> String {
        Cache::<u32>::new::<Plain>("t", Duration::ZERO, ArgsKey(args)).key
    }

    #[test]
    fn same_arguments_same_key() {
        let a = key_of(&[&"x", &1]);
        let b = key_of(&[&"x".to_owned(), &1]);
        let c = key_of(&[&"y", &1]);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.starts_with("1:t:"));
    }

    #[test]
    fn colons_in_names_and_keys_stay_apart() {
        let a = Cache::<u32>::new::<Plain>("a", Duration::ZERO, "b:c");
        let b = Cache::<u32>::new::<Plain>("a:b", Duration::ZERO, "c");
        assert_ne!(a.key, b.key);
        assert_eq!(task_of(&a.key), Some("a"));
        assert_eq!(task_of(&b.key), Some("a:b"));
    }

    #[test]
    fn entries_expire() {
        let cache = Cache::<u32>::new::<Plain>("expiring", Duration::from_secs(10), "k");
        let t0 = Timestamp::from_micros(0);
        cache.store(&7, t0);
        assert_eq!(cache.lookup(t0), Some(7));
        let later = t0.checked_add(Duration::from_secs(10)).unwrap();
        assert_eq!(cache.lookup(later), None);
        assert_eq!(
            clear_task("expiring"),
            0,
            "the expired entry was removed on lookup"
        );
    }
}
