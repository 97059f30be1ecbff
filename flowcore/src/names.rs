//! Run ids and the readable names of runs.

use std::fmt;

use uuid::Uuid;

use crate::clock::Timestamp;

/// A fresh run id: a version 7 UUID, the wall-clock millisecond followed by random bits.
///
/// Time-ordered ids keep the store's indexes appending at their end instead of writing all
/// over the file (random ids made SQLite five times slower as the file grew). The random bits
/// come from a fast per-thread generator rather than the OS, because a task run needs an id on
/// the hot path; run ids must be unique, not unpredictable.
pub(crate) fn new_run_id() -> Uuid {
    new_run_id_at(Timestamp::wall_now())
}

thread_local! {
    /// The random part of ids. Seeded from the OS's randomness (through `RandomState`), not
    /// from fastrand's default seed of the clock and thread id: processes started at the same
    /// instant on a coarse clock would otherwise draw the same ids, and several processes
    /// share one store.
    static ID_RNG: std::cell::RefCell<fastrand::Rng> = std::cell::RefCell::new(
        fastrand::Rng::with_seed(os_seed()),
    );
}

fn os_seed() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// A fresh run id for a run created at `at`: a task run or flow run has its Pending time
/// already, and reading the clock again costs more than the rest of the id.
pub(crate) fn new_run_id_at(at: Timestamp) -> Uuid {
    let millis = u64::try_from(at.as_micros() / 1000).unwrap_or(0);
    let random = ID_RNG.with(|rng| rng.borrow_mut().u128(..)).to_le_bytes();
    let mut tail = [0u8; 10];
    tail.copy_from_slice(&random[..10]);
    uuid::Builder::from_unix_timestamp_millis(millis, &tail).into_uuid()
}

/// A readable flow run name, adjective-animal: `"enchanted-peacock"`.
pub(crate) fn flow_run_name() -> String {
    let adjective = ADJECTIVES[fastrand::usize(..ADJECTIVES.len())];
    let animal = ANIMALS[fastrand::usize(..ANIMALS.len())];
    // Not `format!`, which costs more than a small flow run's other allocations together.
    let mut name = String::with_capacity(adjective.len() + 1 + animal.len());
    name.push_str(adjective);
    name.push('-');
    name.push_str(animal);
    name
}

/// A task run's name: the one `#[task(task_run_name = …)]` gave it, else its task's name and
/// the last three hex digits of its id (random digits; the first ones are a timestamp),
/// `"extract-a8e"`. Written out only when shown, so a task run without `task_run_name`
/// allocates no name.
#[derive(Clone, Copy)]
pub struct TaskRunName<'a> {
    pub(crate) task: &'a str,
    pub(crate) id: Uuid,
    pub(crate) given: Option<&'a str>,
}

impl<'a> TaskRunName<'a> {
    pub(crate) fn new(task: &'a str, id: Uuid, given: Option<&'a str>) -> Self {
        TaskRunName { task, id, given }
    }
}

impl TaskRunName<'_> {
    /// The last three hex digits of the id, the suffix of a name not given.
    fn hex(&self) -> [char; 3] {
        let digit = |n: u128| char::from(b"0123456789abcdef"[(n & 0xf) as usize]);
        let id = self.id.as_u128();
        [digit(id >> 8), digit(id >> 4), digit(id)]
    }

    /// Appends the name to `out`: what `write!(out, "{name}")` does, without the formatting
    /// machinery, which costs more than the name (this runs for every logged task run).
    pub(crate) fn push_to(&self, out: &mut String) {
        match self.given {
            Some(given) => out.push_str(given),
            None => {
                out.push_str(self.task);
                out.push('-');
                out.extend(self.hex());
            }
        }
    }
}

impl fmt::Display for TaskRunName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write as _;
        match self.given {
            Some(given) => f.write_str(given),
            // `{task}-{:03x}`, written without the formatting machinery.
            None => {
                f.write_str(self.task)?;
                f.write_char('-')?;
                self.hex().into_iter().try_for_each(|c| f.write_char(c))
            }
        }
    }
}

impl fmt::Debug for TaskRunName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

const ADJECTIVES: &[&str] = &[
    "able",
    "amber",
    "amiable",
    "ancient",
    "arcane",
    "ardent",
    "autumn",
    "azure",
    "bold",
    "brave",
    "breezy",
    "bright",
    "brisk",
    "bronze",
    "bubbly",
    "calm",
    "candid",
    "carmine",
    "cheerful",
    "clever",
    "cobalt",
    "cosmic",
    "crimson",
    "curious",
    "daring",
    "dapper",
    "dazzling",
    "deft",
    "eager",
    "earnest",
    "electric",
    "elegant",
    "emerald",
    "enchanted",
    "energetic",
    "fearless",
    "festive",
    "fierce",
    "fluffy",
    "fragrant",
    "friendly",
    "frosty",
    "gentle",
    "gifted",
    "glorious",
    "golden",
    "graceful",
    "grinning",
    "happy",
    "hardy",
    "hidden",
    "honest",
    "humble",
    "icy",
    "illustrious",
    "indigo",
    "jolly",
    "jovial",
    "keen",
    "kind",
    "lavender",
    "light",
    "lively",
    "loyal",
    "lucky",
    "lunar",
    "magnetic",
    "majestic",
    "mellow",
    "merry",
    "mighty",
    "misty",
    "modest",
    "nimble",
    "noble",
    "olive",
    "opal",
    "patient",
    "peaceful",
    "placid",
    "plucky",
    "polite",
    "proud",
    "quick",
    "quiet",
    "radiant",
    "rapid",
    "rustic",
    "sage",
    "scarlet",
    "serene",
    "shiny",
    "silent",
    "silver",
    "sincere",
    "smooth",
    "snowy",
    "solar",
    "sparkling",
    "spirited",
    "splendid",
    "steady",
    "stellar",
    "sturdy",
    "sunny",
    "swift",
    "tangerine",
    "teal",
    "tidy",
    "tireless",
    "tranquil",
    "true",
    "twilight",
    "upbeat",
    "valiant",
    "velvet",
    "vibrant",
    "vigilant",
    "violet",
    "vivid",
    "warm",
    "whimsical",
    "wise",
    "witty",
    "zealous",
    "zesty",
];

const ANIMALS: &[&str] = &[
    "albatross",
    "alpaca",
    "antelope",
    "armadillo",
    "badger",
    "barracuda",
    "beaver",
    "bison",
    "bobcat",
    "buffalo",
    "capybara",
    "caracal",
    "cassowary",
    "chameleon",
    "cheetah",
    "chinchilla",
    "condor",
    "cormorant",
    "coyote",
    "crane",
    "dingo",
    "dolphin",
    "dormouse",
    "dragonfly",
    "eagle",
    "echidna",
    "egret",
    "elk",
    "falcon",
    "ferret",
    "finch",
    "flamingo",
    "fox",
    "gazelle",
    "gecko",
    "gibbon",
    "giraffe",
    "gopher",
    "grebe",
    "hare",
    "hedgehog",
    "heron",
    "hornet",
    "hummingbird",
    "ibex",
    "ibis",
    "iguana",
    "jackal",
    "jaguar",
    "kestrel",
    "kingfisher",
    "kiwi",
    "koala",
    "lemur",
    "leopard",
    "llama",
    "lobster",
    "lynx",
    "macaw",
    "magpie",
    "manatee",
    "marmot",
    "marten",
    "meerkat",
    "mongoose",
    "moose",
    "narwhal",
    "newt",
    "ocelot",
    "octopus",
    "okapi",
    "orca",
    "oriole",
    "otter",
    "owl",
    "panda",
    "pangolin",
    "panther",
    "parrot",
    "peacock",
    "pelican",
    "penguin",
    "petrel",
    "pheasant",
    "pika",
    "platypus",
    "porcupine",
    "potoo",
    "puffin",
    "quail",
    "quokka",
    "raccoon",
    "raven",
    "reindeer",
    "robin",
    "salamander",
    "seahorse",
    "seal",
    "skunk",
    "sloth",
    "sparrow",
    "squid",
    "starling",
    "stork",
    "swan",
    "tapir",
    "tarsier",
    "tern",
    "tiger",
    "toucan",
    "turtle",
    "urchin",
    "vulture",
    "wallaby",
    "walrus",
    "weasel",
    "wombat",
    "wren",
    "yak",
    "zebra",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_thousand_flow_run_names() {
        assert!(ADJECTIVES.len() * ANIMALS.len() > 10_000);
        let name = flow_run_name();
        let (adjective, animal) = name.split_once('-').unwrap();
        assert!(ADJECTIVES.contains(&adjective) && ANIMALS.contains(&animal));
    }

    #[test]
    fn task_run_name_uses_the_ids_last_digits() {
        let id = Uuid::parse_str("019ab0c2-d400-7000-8000-00000000da8e").unwrap();
        let name = TaskRunName::new("extract", id, None);
        assert_eq!(name.to_string(), "extract-a8e");
        let given = TaskRunName::new("extract", id, Some("extract-orders"));
        assert_eq!(given.to_string(), "extract-orders");
    }

    #[test]
    fn run_ids_are_time_ordered_version_7() {
        let first = new_run_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = new_run_id();
        assert_eq!(first.get_version_num(), 7);
        assert!(first < second, "{first} < {second}");
    }
}
