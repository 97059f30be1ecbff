//! What the memory store keeps beside its runs, by run: log lines and artifacts. When it
//! forgets an old flow run, their records must go too, or a long-running process that logs
//! would keep every line it ever logged. Taking them out one flow run at a time would cost a
//! pass over all of them per flow run; so the forgotten runs are noted, and their records
//! taken out in one pass once that pays: when the records have doubled since the last pass, or
//! the noted runs outnumber them.

use std::collections::HashSet;

use uuid::Uuid;

use crate::run_id_hasher::BuildRunIdHasher;

/// A pass is not made for fewer records than this.
const AT_LEAST: usize = 4096;

/// Records kept in the order they came, each of one run (or of none).
pub(crate) struct PerRun<T> {
    items: Vec<T>,
    run_of: fn(&T) -> Option<Uuid>,
    forgotten: HashSet<Uuid, BuildRunIdHasher>,
    /// How many records there may be before the next pass.
    limit: usize,
}

impl<T> PerRun<T> {
    pub(crate) fn new(run_of: fn(&T) -> Option<Uuid>) -> Self {
        PerRun {
            items: Vec::new(),
            run_of,
            forgotten: HashSet::default(),
            limit: AT_LEAST,
        }
    }

    pub(crate) fn push(&mut self, item: T) {
        self.items.push(item);
        if self.items.len() >= self.limit {
            self.take_out_forgotten();
        }
    }

    /// The records of run `id` are no longer wanted.
    pub(crate) fn forget(&mut self, id: Uuid) {
        if self.items.is_empty() {
            return;
        }
        self.forgotten.insert(id);
        if self.forgotten.len() > self.items.len().max(AT_LEAST) {
            self.take_out_forgotten();
        }
    }

    /// Whether any record is kept: if none, forgetting runs can skip naming them.
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub(crate) fn iter(&self) -> std::slice::Iter<'_, T> {
        self.items.iter()
    }

    pub(crate) fn retain(&mut self, keep: impl FnMut(&T) -> bool) {
        self.items.retain(keep);
    }

    fn take_out_forgotten(&mut self) {
        if !self.forgotten.is_empty() {
            let (forgotten, run_of) = (&self.forgotten, self.run_of);
            self.items
                .retain(|item| run_of(item).is_none_or(|run| !forgotten.contains(&run)));
            self.forgotten.clear();
        }
        self.limit = (2 * self.items.len()).max(AT_LEAST);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(n: u64) -> Uuid {
        Uuid::from_u64_pair(0, n)
    }

    fn lines() -> PerRun<(Option<Uuid>, u64)> {
        PerRun::new(|line| line.0)
    }

    #[test]
    fn the_records_of_forgotten_runs_go_and_the_others_stay_in_order() {
        let mut kept = lines();
        // A hundred runs of a hundred lines each, the first fifty forgotten as they end.
        for n in 0..10_000 {
            kept.push((Some(run(n / 100)), n));
            if n % 100 == 99 && n < 5_000 {
                kept.forget(run(n / 100));
            }
        }
        kept.push((None, 10_000));
        kept.take_out_forgotten();
        assert!(kept.iter().all(|(r, _)| r.is_none_or(|r| r >= run(50))));
        assert_eq!(kept.iter().count(), 50 * 100 + 1);
        assert!(
            kept.iter().is_sorted_by_key(|(_, n)| *n),
            "in the order they came"
        );
    }

    #[test]
    fn memory_stays_bounded_when_runs_are_forgotten_as_fast_as_they_log() {
        let mut kept = lines();
        for n in 0..200_000u64 {
            kept.push((Some(run(n)), n));
            kept.forget(run(n));
        }
        assert!(kept.items.len() <= 2 * AT_LEAST, "{}", kept.items.len());
        assert!(
            kept.forgotten.len() <= 2 * AT_LEAST,
            "{}",
            kept.forgotten.len()
        );
    }

    #[test]
    fn forgetting_runs_that_logged_nothing_keeps_no_note_of_them() {
        let mut kept = lines();
        for n in 0..100_000 {
            kept.forget(run(n));
        }
        assert!(kept.forgotten.is_empty());
        kept.push((Some(run(1)), 1));
        for n in 0..100_000 {
            kept.forget(run(n + 10));
        }
        assert!(kept.forgotten.len() <= AT_LEAST + 1);
        assert_eq!(kept.iter().count(), 1);
    }
}
