//! Compile-fail tests of the `#[task]` and `#[flow]` attributes: each file in `tests/ui/` is one
//! misuse, and its `.stderr` is the error users see. `tests/ui/pass/` holds programs that must
//! compile (and run). Regenerate the `.stderr` files with `TRYBUILD=overwrite cargo test --test ui`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
