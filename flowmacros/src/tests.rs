//! Properties of the generated code that the UI tests cannot see: which paths it names, and
//! what an attribute with an error expands to.

use proc_macro2::{TokenStream, TokenTree};
use quote::quote;

use crate::args::Macro;
use crate::expand_attribute;

/// Every identifier in the tokens, groups included, each with the token before it.
fn idents(tokens: TokenStream) -> Vec<(Option<TokenTree>, String)> {
    fn walk(tokens: TokenStream, out: &mut Vec<(Option<TokenTree>, String)>) {
        let mut before = None;
        for tree in tokens {
            match &tree {
                TokenTree::Ident(ident) => out.push((before.clone(), ident.to_string())),
                TokenTree::Group(group) => walk(group.stream(), out),
                _ => {}
            }
            before = Some(tree);
        }
    }
    let mut out = Vec::new();
    walk(tokens, &mut out);
    out
}

fn count(tokens: &TokenStream, name: &str) -> usize {
    idents(tokens.clone())
        .iter()
        .filter(|(_, ident)| ident == name)
        .count()
}

/// A task and a flow with every setting that generates code.
fn everything(krate: Option<&str>) -> Vec<TokenStream> {
    let krate = krate.map(|path| quote!(crate = #path,));
    vec![
        expand_attribute(
            quote!(#krate retries = 2, retry_delay = "1s", retry_if = transient, timeout = "5s",
                cache_for = "1h", tags = ["db"], on_state = log, on_failure = [notify]),
            quote!(
                async fn fetch(id: u64, name: &str) -> Result<u64, Error> {
                    Ok(id)
                }
            ),
            Macro::Task,
        ),
        expand_attribute(
            quote!(#krate retries = 1, timeout = "5s", retry_if = transient, on_completion = notify),
            quote!(
                async fn nightly(day: u32) -> anyhow::Result<u32> {
                    Ok(day)
                }
            ),
            Macro::Flow,
        ),
        expand_attribute(
            quote!(#krate cache_for = "1h"),
            quote!(
                async fn plain<T: Clone>(value: T) -> u64 {
                    1
                }
            ),
            Macro::Task,
        ),
    ]
}

#[test]
fn the_generated_code_names_flowcore_by_the_path_given_with_crate() {
    for tokens in everything(Some("crate::rt::engine")) {
        assert_eq!(count(&tokens, "flowcore"), 0, "{tokens}");
        assert!(count(&tokens, "engine") > 5, "{tokens}");
        assert_eq!(count(&tokens, "compile_error"), 0, "{tokens}");
    }
}

#[test]
fn without_crate_the_generated_code_names_flowcore_from_the_root() {
    for tokens in everything(None) {
        let mut flowcore = 0;
        for (before, ident) in idents(tokens.clone()) {
            if ident == "flowcore" {
                flowcore += 1;
                assert!(
                    matches!(before, Some(TokenTree::Punct(p)) if p.as_char() == ':'),
                    "`flowcore` without a leading `::` in {tokens}"
                );
            }
        }
        assert!(flowcore > 5, "{tokens}");
    }
}

#[test]
fn the_generated_code_names_prelude_items_by_absolute_path() {
    // The bodies above use `Ok`, `Result` and `Clone` themselves; everything else that could
    // be shadowed must come after `::`.
    let shadowable = [
        "Option", "Some", "None", "Box", "Vec", "String", "Default", "Into", "From", "Send",
        "Sync", "Sized", "Fn", "FnOnce", "FnMut", "Drop", "Iterator", "core", "std",
    ];
    for tokens in everything(None) {
        for (before, ident) in idents(tokens.clone()) {
            if shadowable.contains(&ident.as_str()) {
                assert!(
                    matches!(&before, Some(TokenTree::Punct(p)) if p.as_char() == ':'),
                    "`{ident}` without a leading `::` in {tokens}"
                );
            }
        }
    }
}

#[test]
fn an_attribute_with_an_error_expands_to_its_error_and_a_function_of_the_same_shape() {
    let tokens = expand_attribute(
        quote!(crate = "crate::rt::engine", colour = "red"),
        quote!(
            async fn paint(wall: u32) -> u32 {
                wall
            }
        ),
        Macro::Task,
    );
    assert_eq!(count(&tokens, "compile_error"), 1, "{tokens}");
    assert_eq!(count(&tokens, "flowcore"), 0, "{tokens}");
    let text = tokens.to_string();
    assert!(
        text.contains(
            "fn paint (_ : u32) -> crate :: rt :: engine :: TaskCall < crate :: rt :: engine :: __private :: UnexpandedTask < u32 >>"
        ),
        "{text}"
    );
    // The user's function is still there, to be checked.
    assert!(
        text.contains("async fn paint (wall : u32) -> u32 { wall }"),
        "{text}"
    );

    let tokens = expand_attribute(
        quote!(),
        quote!(
            fn sync_flow() {}
        ),
        Macro::Flow,
    );
    assert_eq!(count(&tokens, "compile_error"), 1, "{tokens}");
    assert!(
        tokens
            .to_string()
            .contains("fn sync_flow () -> :: flowcore :: FlowCall < :: flowcore :: __private :: UnexpandedFlow < () >>"),
        "{tokens}"
    );
}

#[test]
fn a_body_that_does_not_parse_is_written_back_for_rustc_to_report() {
    let tokens = expand_attribute(
        quote!(retries = 1),
        quote!(async fn parse(text: String) -> Result<u32, String> { let x = text +; x.parse() }),
        Macro::Task,
    );
    assert_eq!(count(&tokens, "compile_error"), 0, "{tokens}");
    assert!(
        tokens
            .to_string()
            .contains("{ let x = text + ; x . parse () }"),
        "{tokens}"
    );
}
