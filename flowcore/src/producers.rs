//! Which task run of a flow run produced each value, by fingerprint: what data edges are found
//! in.
//!
//! The memory is bounded. A flow run of a million task runs would otherwise keep a million
//! fingerprints, and every output's insertion would land in a table far larger than the
//! processor's caches: in `task_call/tracked_task_in_flow` that map was most of a task call's
//! cost. So fingerprints are kept in two generations of at most [`GENERATION`] each: when the
//! newer one is full it becomes the older one and the older one is emptied. A value found in the
//! older generation moves to the newer one, so a value that keeps being passed (a config, a
//! connection string) keeps its producer however long the flow run goes on; a value produced
//! and then not seen for more than `GENERATION` outputs draws no edge, as Prefect forgets an
//! object once nothing holds it.
//!
//! Even bounded, a generation is larger than the caches nearest the processor, and an insertion
//! into it lands somewhere cold; one at a time, each made the flow run's lock wait for its write
//! to memory. So outputs go first into a small table of [`RECENT`] entries, where the next call
//! also looks first (a task given the previous task's output finds it there), and move into the
//! newer generation all together when it is full: the processor then overlaps their writes.

use std::collections::HashMap;

use uuid::Uuid;

use crate::fingerprint::BuildPreHashed;

/// How many fingerprints one generation holds: enough for a fan-in of a hundred thousand task
/// runs' outputs (their producers all remembered); each table takes about 6.5 MB at most.
pub(crate) const GENERATION: usize = 1 << 17;

/// How many of the latest outputs wait in the small table before they move into the newer
/// generation: about 100 KB, which stays in the processor's second-level cache.
pub(crate) const RECENT: usize = 1 << 12;

/// The producers of the values a flow run has seen lately, by fingerprint.
#[derive(Debug, Default)]
pub(crate) struct Producers {
    recent: HashMap<u64, Uuid, BuildPreHashed>,
    newer: HashMap<u64, Uuid, BuildPreHashed>,
    older: HashMap<u64, Uuid, BuildPreHashed>,
}

impl Producers {
    /// Notes that task run `id` produced the value of `fingerprint`, in place of any earlier
    /// producer of an equal value.
    pub(crate) fn insert(&mut self, fingerprint: u64, id: Uuid) {
        self.recent.insert(fingerprint, id);
        if self.recent.len() >= RECENT {
            // Drained in place: the small table keeps its allocation for the next ones.
            let mut recent = std::mem::take(&mut self.recent);
            for (fingerprint, id) in recent.drain() {
                self.keep(fingerprint, id);
            }
            self.recent = recent;
        }
    }

    /// Puts a producer into the newer generation, which becomes the older one when full.
    fn keep(&mut self, fingerprint: u64, id: Uuid) {
        if self.newer.len() >= GENERATION && !self.newer.contains_key(&fingerprint) {
            std::mem::swap(&mut self.newer, &mut self.older);
            // Keeps its allocation: a long flow run reuses the same two tables.
            self.newer.clear();
        }
        self.newer.insert(fingerprint, id);
    }

    /// The task run that produced the value of `fingerprint` last, if it is remembered.
    pub(crate) fn get(&mut self, fingerprint: u64) -> Option<Uuid> {
        if let Some(id) = self.recent.get(&fingerprint) {
            return Some(*id);
        }
        if let Some(id) = self.newer.get(&fingerprint) {
            return Some(*id);
        }
        let id = *self.older.get(&fingerprint)?;
        self.keep(fingerprint, id);
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> Uuid {
        Uuid::from_u64_pair(0, n)
    }

    #[test]
    fn the_latest_producer_wins() {
        let mut p = Producers::default();
        p.insert(7, id(1));
        p.insert(7, id(2));
        assert_eq!(p.get(7), Some(id(2)));
        assert_eq!(p.get(8), None);
    }

    #[test]
    fn a_value_is_remembered_for_a_generation_of_other_values_at_least() {
        let mut p = Producers::default();
        p.insert(u64::MAX, id(0));
        for n in 0..GENERATION as u64 {
            p.insert(n, id(n));
        }
        assert_eq!(p.get(u64::MAX), Some(id(0)), "in the older generation");
        // Found, it moved to the newer generation: another full generation later it is there.
        for n in 0..GENERATION as u64 - 1 {
            p.insert(n + (1 << 40), id(n));
        }
        assert_eq!(p.get(u64::MAX), Some(id(0)), "kept by being used");
    }

    #[test]
    fn a_value_not_seen_for_two_generations_is_forgotten_and_memory_stays_bounded() {
        let mut p = Producers::default();
        p.insert(u64::MAX, id(0));
        // Forgotten once two generations' worth have moved in after it, which they do
        // `RECENT` at a time.
        let later = (2 * GENERATION + RECENT) as u64;
        for n in 0..later - 2 {
            p.insert(n, id(n));
        }
        assert_eq!(
            p.get(u64::MAX),
            Some(id(0)),
            "two generations and the recent ones"
        );
        let mut p = Producers::default();
        p.insert(u64::MAX, id(0));
        for n in 0..later - 1 {
            p.insert(n, id(n));
        }
        assert_eq!(p.get(u64::MAX), None);
        assert!(p.newer.len() <= GENERATION && p.older.len() <= GENERATION);
        assert!(p.recent.len() < RECENT);
        // The latest values are all there.
        assert_eq!(
            p.get(2 * GENERATION as u64 - 1),
            Some(id(2 * GENERATION as u64 - 1))
        );
        assert_eq!(p.get(GENERATION as u64), Some(id(GENERATION as u64)));
    }
}
