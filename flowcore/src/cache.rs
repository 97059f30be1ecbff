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
    let before = ENTRIES.len();
    ENTRIES.retain(|key, _| task_of(key) != task);
    before - ENTRIES.len()
}

/// Removes every cached result; returns how many there were.
pub fn clear() -> usize {
    let before = ENTRIES.len();
    ENTRIES.clear();
    before
}

/// The number of cached results, expired ones included until they are next looked up.
pub fn len() -> usize {
    ENTRIES.len()
}

fn task_of(key: &str) -> &str {
    key.rsplit_once(':').map_or(key, |(task, _)| task)
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
    /// Keyed by the task's name and a hash of `args` (the call's arguments, by reference).
    pub fn by_args<K, A>(task: &str, ttl: Duration, args: &A) -> Self
    where
        K: Outcome<R>,
        K::Value: Serialize + DeserializeOwned,
        A: Serialize + ?Sized,
    {
        let mut hasher = HashWriter(Xxh3::new());
        // Serializing into a hasher cannot fail on I/O; a Serialize impl that errors still
        // yields a key (of what it wrote), which is no worse than a custom key function.
        let _ = serde_json::to_writer(&mut hasher, args);
        let key = format!("{task}:{:032x}", hasher.0.digest128());
        Self::with_key::<K>(key, ttl)
    }

    /// Keyed by the task's name and the string its `cache_key` function returned.
    pub fn by_key<K>(task: &str, ttl: Duration, key: impl std::fmt::Display) -> Self
    where
        K: Outcome<R>,
        K::Value: Serialize + DeserializeOwned,
    {
        Self::with_key::<K>(format!("{task}:{key}"), ttl)
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

    #[test]
    fn same_arguments_same_key() {
        let a = Cache::<u32>::by_args::<Plain, _>("t", Duration::ZERO, &(&"x", &1));
        let b = Cache::<u32>::by_args::<Plain, _>("t", Duration::ZERO, &("x".to_owned(), 1));
        let c = Cache::<u32>::by_args::<Plain, _>("t", Duration::ZERO, &("y", 1));
        assert_eq!(a.key, b.key);
        assert_ne!(a.key, c.key);
        assert!(a.key.starts_with("t:"));
    }

    #[test]
    fn entries_expire() {
        let cache = Cache::<u32>::by_key::<Plain>("expiring", Duration::from_secs(10), "k");
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
