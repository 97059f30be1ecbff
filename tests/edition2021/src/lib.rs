//! Only the tests matter here: `tests/macros.rs` uses the macros on edition 2021.
