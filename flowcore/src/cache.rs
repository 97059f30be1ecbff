//! Cached task results: `#[task(cache_for = "1d")]`.
//!
//! A cached task's key is its name plus a stable 128-bit hash (xxh3) of its arguments
//! serialized with serde, or the string returned by its `cache_key` function. A call whose key
//! has an unexpired entry returns the stored result without running the body and ends in
//! state `Cached`. Results are stored as JSON text, and only successful ones (`Ok` values).
//!
//! Entries live in the run store ([`Store`]), so a result cached by one process is
//! found by the next: with the default SQLite store, `cache_for = "1d"` means a rerun tomorrow
//! morning still hits. Expiry follows tokio's clock, like every timestamp in flowcore, so tests
//! can step over a day with `tokio::time::advance`.
//!
//! Hashing serialized arguments means a `HashMap` argument, whose order varies from run to
//! run, gives varying keys: use a `BTreeMap`, or a `cache_key` function.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use xxhash_rust::xxh3::Xxh3;

use crate::clock::Timestamp;
use crate::codec::Codec;
use crate::outcome::Outcome;
use crate::store::{CacheEntry, Event, Store, StoreError};

/// Removes every cached result of the task named `task` from this process's store; returns
/// how many there were.
///
/// ```
/// # flowcore::Store::memory().install().unwrap();
/// assert_eq!(flowcore::cache::clear_task("never-cached").unwrap(), 0);
/// ```
pub fn clear_task(task: &str) -> Result<usize, StoreError> {
    Store::current().clear_cache(Some(task))
}

/// Removes every cached result from this process's store; returns how many there were.
pub fn clear() -> Result<usize, StoreError> {
    Store::current().clear_cache(None)
}

/// Every cached result in this process's store.
pub fn entries() -> Result<Vec<CacheEntry>, StoreError> {
    Store::current().cache_entries()
}

/// An entry's key: `"{len}:{task}:{key}"`. The task name's length comes first, so that a `:`
/// in a task's name or in a `cache_key` result (a URL) cannot make two tasks' keys equal.
fn entry_key(task: &str, key: impl std::fmt::Display) -> String {
    format!("{}:{task}:{key}", task.len())
}

/// How one call of a cached task reads and writes the cache.
#[doc(hidden)]
pub struct Cache<R> {
    pub(crate) key: String,
    task: String,
    ttl: Duration,
    codec: Codec<R>,
}

impl<R> Cache<R> {
    /// Keyed by the task's name and `key`: an [`ArgsKey`] of the call's arguments, or what the
    /// task's `cache_key` function returned.
    pub fn new<K>(task: &str, ttl: Duration, key: impl std::fmt::Display) -> Self
    where
        K: Outcome<R>,
        K::Value: Serialize + DeserializeOwned,
    {
        Cache {
            key: entry_key(task, key),
            task: task.to_owned(),
            ttl,
            codec: Codec::of::<K>(),
        }
    }

    /// The cached output, if there is a live entry that still decodes to the output type.
    pub(crate) async fn lookup(&self, store: &Store) -> Option<R> {
        self.codec
            .decode(&store.cache_get(&self.key, Timestamp::now()).await?)
    }

    /// Stores a successful output, and waits until it is committed: the next call, in this
    /// process or another, finds it.
    pub(crate) async fn store(&self, store: &Store, out: &R) {
        let Some(json) = self.codec.encode(out) else {
            return;
        };
        let now = Timestamp::now();
        store.send(Event::CachePut {
            key: self.key.clone(),
            task: self.task.clone(),
            json,
            created_at: now,
            expires_at: now
                .checked_add(self.ttl)
                .unwrap_or(Timestamp::from_micros(i64::MAX)),
        });
        if let Err(e) = store.flush().await {
            tracing::warn!(target: "flowcore", "Could not store the cached result: {e}");
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
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire() {
        let store = Store::memory();
        let cache = Cache::<u32>::new::<Plain>("expiring", Duration::from_secs(10), "k");
        cache.store(&store, &7).await;
        assert_eq!(cache.lookup(&store).await, Some(7));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(cache.lookup(&store).await, None);
        assert_eq!(
            store.cache_entries().unwrap().len(),
            0,
            "the expired entry was removed on lookup"
        );
    }
}
