//! The hasher of maps keyed by run ids.

use std::hash::{BuildHasherDefault, Hasher};

/// Hashes a run id in two multiply-rotate rounds: several times cheaper than SipHash, which
/// guards against chosen keys that random ids cannot be.
#[derive(Default)]
pub(crate) struct RunIdHasher(u64);

impl Hasher for RunIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0 ^ u64::from_le_bytes(word))
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .rotate_left(23);
        }
    }

    fn write_usize(&mut self, _length_prefix: usize) {}

    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
}

/// Builds [`RunIdHasher`]s, for `HashMap<Uuid, _, BuildRunIdHasher>`.
pub(crate) type BuildRunIdHasher = BuildHasherDefault<RunIdHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_hash_evenly() {
        use std::hash::BuildHasher;
        let hasher = BuildRunIdHasher::default();
        let (mut low, mut high) = ([0u32; 256], [0u32; 128]);
        for _ in 0..256_000 {
            let h = hasher.hash_one(crate::names::new_run_id());
            low[(h & 0xff) as usize] += 1;
            high[(h >> 57) as usize] += 1;
        }
        // 1,000 (low bits) and 2,000 (top seven bits) expected in each bucket.
        assert!(low.iter().all(|&n| (800..1200).contains(&n)), "{low:?}");
        assert!(high.iter().all(|&n| (1700..2300).contains(&n)), "{high:?}");
    }
}
