//! Run ids and the readable names of runs.

use std::fmt;

use uuid::Uuid;

/// A fresh random (version 4) run id.
///
/// Drawn from a fast per-thread generator rather than the OS, because a task run needs one on
/// the hot path; run ids must be unique, not unpredictable.
pub(crate) fn new_run_id() -> Uuid {
    uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid()
}

/// A readable flow run name, adjective-animal: `"enchanted-peacock"`.
pub(crate) fn flow_run_name() -> String {
    let adjective = ADJECTIVES[fastrand::usize(..ADJECTIVES.len())];
    let animal = ANIMALS[fastrand::usize(..ANIMALS.len())];
    format!("{adjective}-{animal}")
}

/// A task run's name: its task's name and the first three hex digits of its id,
/// `"extract-a8e"`. Written out only when shown, so a task run allocates no name.
#[derive(Clone, Copy)]
pub struct TaskRunName<'a> {
    pub(crate) task: &'a str,
    pub(crate) id: Uuid,
}

impl fmt::Display for TaskRunName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{:03x}", self.task, self.id.as_u128() >> 116)
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
    fn task_run_name_uses_the_id_prefix() {
        let id = Uuid::parse_str("a8e0c2d4-0000-4000-8000-000000000000").unwrap();
        let name = TaskRunName {
            task: "extract",
            id,
        };
        assert_eq!(name.to_string(), "extract-a8e");
    }

    #[test]
    fn run_ids_are_version_4() {
        assert_eq!(new_run_id().get_version_num(), 4);
        assert_ne!(new_run_id(), new_run_id());
    }
}
