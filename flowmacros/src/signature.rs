//! Stage 2a: the function under the attribute, checked and taken apart for expansion.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens as _;
use syn::ext::IdentExt as _;
use syn::visit::Visit;
use syn::{
    Attribute, FnArg, GenericArgument, GenericParam, Generics, Ident, Pat, PathArguments,
    ReturnType, Safety, Signature, Type, TypeImplTrait, Visibility, parse_quote,
};

use crate::args::Macro;
use crate::errors::Errors;
use crate::item::FnItem;
use crate::lifetimes;

/// One argument of the function.
pub(crate) struct Arg {
    /// The name the generated wrapper uses for it: the user's, with mixed-site hygiene (see
    /// [`wrapper_name`]).
    pub name: Ident,
    /// Its type with elided lifetimes named, as the wrapper's signature declares it.
    pub ty: Type,
}

/// The function, ready for expansion.
pub(crate) struct Function {
    /// Attributes for the wrapper users call: docs, `cfg`, lints, `deprecated`.
    pub outer_attrs: Vec<Attribute>,
    pub vis: Visibility,
    /// The wrapper's generics: the function's own plus a name for every elided lifetime.
    pub generics: Generics,
    pub args: Vec<Arg>,
    /// The declared output type, `()` when none is written.
    pub output: Type,
    /// `true` when the output is a `Result`: `Err` fails the run.
    pub fallible: bool,
    /// For a `Result` output, its `T` and `E` where they are written out (`io::Result<T>` has
    /// no `E`): the expansion puts checks about them at these types.
    pub ok_type: Option<Type>,
    pub err_type: Option<Type>,
    /// The user's function, unchanged apart from the attributes it keeps: the body that runs.
    pub body: FnItem,
}

impl Function {
    pub(crate) fn ident(&self) -> &Ident {
        &self.body.sig.ident
    }

    /// Type and const parameters, to name them when calling the body.
    pub(crate) fn type_params(&self) -> Vec<&Ident> {
        self.body
            .sig
            .generics
            .params
            .iter()
            .filter_map(|p| match p {
                GenericParam::Type(t) => Some(&t.ident),
                GenericParam::Const(c) => Some(&c.ident),
                GenericParam::Lifetime(_) => None,
            })
            .collect()
    }

    /// Every generic parameter of the wrapper, for its `use<…>` bound.
    pub(crate) fn captures(&self) -> Vec<TokenStream> {
        self.generics
            .params
            .iter()
            .map(|p| match p {
                GenericParam::Lifetime(l) => l.lifetime.to_token_stream(),
                GenericParam::Type(t) => t.ident.to_token_stream(),
                GenericParam::Const(c) => c.ident.to_token_stream(),
            })
            .collect()
    }
}

/// Checks that the item is a function the attribute can wrap, and takes it apart. Every
/// problem goes into `errors`.
pub(crate) fn analyze(item: &FnItem, which: Macro, errors: &mut Errors) -> Function {
    let sig = &item.sig;
    check_qualifiers(sig, which, errors);

    let mut args = Vec::new();
    let mut generics = sig.generics.clone();
    let mut namer = lifetimes::Namer::default();
    for (i, input) in sig.inputs.iter().enumerate() {
        match input {
            FnArg::Receiver(receiver) => errors.at(
                receiver,
                format!(
                    "{} cannot take `self`: a {} is a free function; pass the value as an argument instead",
                    which.attr(),
                    which.noun()
                ),
            ),
            FnArg::Typed(typed) => {
                if let Some(impl_trait) = find_impl_trait(&typed.ty) {
                    errors.at(
                        impl_trait,
                        format!(
                            "{} does not support `impl Trait` arguments; use a named type parameter: `fn f<T: Trait>(x: T)`",
                            which.attr()
                        ),
                    );
                    continue;
                }
                let name = match &*typed.pat {
                    Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => {
                        wrapper_name(&p.ident)
                    }
                    _ => Ident::new(&format!("__arg{i}"), Span::mixed_site()),
                };
                let mut ty = (*typed.ty).clone();
                namer.name_elided(&mut ty);
                args.push(Arg { name, ty });
            }
        }
    }
    for lifetime in namer.into_lifetimes() {
        generics.params.push(parse_quote!(#lifetime));
    }
    // Lifetimes must come before types and consts in a parameter list.
    let mut params: Vec<GenericParam> = generics.params.into_iter().collect();
    params.sort_by_key(|p| !matches!(p, GenericParam::Lifetime(_)));
    generics.params = params.into_iter().collect();
    if generics.lt_token.is_none() && !generics.params.is_empty() {
        generics.lt_token = Some(Default::default());
        generics.gt_token = Some(Default::default());
    }

    let output: Type = match &sig.output {
        ReturnType::Default => parse_quote!(()),
        ReturnType::Type(_, ty) => {
            if let Some(impl_trait) = find_impl_trait(ty) {
                errors.at(
                    impl_trait,
                    format!(
                        "{} needs a named return type; `impl Trait` is not supported here",
                        which.attr()
                    ),
                );
            }
            (**ty).clone()
        }
    };
    let fallible = is_result(&output);
    let (ok_type, err_type) = match result_args(&output) {
        Some((ok, err)) if fallible => (ok.cloned(), err.cloned()),
        _ => (None, None),
    };

    let (outer_attrs, inner_attrs) = split_attrs(&item.attrs);
    let mut body = item.clone();
    body.attrs = inner_attrs;
    let vis = std::mem::replace(&mut body.vis, Visibility::Inherited);
    Function {
        outer_attrs,
        vis,
        generics,
        args,
        output,
        fallible,
        ok_type,
        err_type,
        body,
    }
}

/// The wrapper's name for an argument: the user's name with mixed-site hygiene, located at the
/// user's. The expressions in the attribute (`on_state = log` beside an argument `log`) and the
/// body's function (`fn user(user: u32)`) are written with call-site hygiene, so neither sees
/// or shadows it.
fn wrapper_name(ident: &Ident) -> Ident {
    let span = Span::mixed_site().located_at(ident.span());
    // Mixed-site spans carry this crate's edition, in which `gen` is a keyword.
    if ident == "gen" {
        return Ident::new_raw("gen", span);
    }
    let mut name = ident.clone();
    name.set_span(span);
    name
}

/// The argument's name as the user wrote it, without `r#`: the key of a flow's parameter.
pub(crate) fn display_name(name: &Ident) -> String {
    name.unraw().to_string()
}

fn check_qualifiers(sig: &Signature, which: Macro, errors: &mut Errors) {
    if sig.asyncness.is_none() {
        errors.at(
            sig.fn_token,
            format!(
                "{} needs an `async fn`: write `async fn {}`",
                which.attr(),
                sig.ident
            ),
        );
    }
    if let Some(constness) = &sig.constness {
        errors.at(
            constness,
            format!("{} cannot be a `const fn`", which.attr()),
        );
    }
    if let Safety::Unsafe(token) = &sig.safety {
        errors.at(
            token,
            format!(
                "{} cannot be an `unsafe fn`; call the unsafe code inside a safe function",
                which.attr()
            ),
        );
    }
    if let Some(abi) = &sig.abi {
        errors.at(abi, format!("{} cannot have an `extern` ABI", which.attr()));
    }
    if let Some(variadic) = &sig.variadic {
        errors.at(variadic, format!("{} cannot be variadic", which.attr()));
    }
}

/// `Result<T, E>`, `io::Result<T>`, `anyhow::Result<T>`: anything whose last path segment is
/// named `Result`. A type alias under another name is not seen as fallible.
fn is_result(ty: &Type) -> bool {
    match ty {
        Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Result"),
        Type::Group(g) => is_result(&g.elem),
        Type::Paren(p) => is_result(&p.elem),
        _ => false,
    }
}

/// The type arguments written on a `…Result<…>` path: `(T, E)`, either possibly absent.
fn result_args(ty: &Type) -> Option<(Option<&Type>, Option<&Type>)> {
    match ty {
        Type::Path(p) => {
            let last = p.path.segments.last()?;
            let PathArguments::AngleBracketed(args) = &last.arguments else {
                return Some((None, None));
            };
            let mut types = args.args.iter().filter_map(|a| match a {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            });
            Some((types.next(), types.next()))
        }
        Type::Group(g) => result_args(&g.elem),
        Type::Paren(p) => result_args(&p.elem),
        _ => None,
    }
}

fn find_impl_trait(ty: &Type) -> Option<&TypeImplTrait> {
    struct Find<'a>(Option<&'a TypeImplTrait>);
    impl<'a> Visit<'a> for Find<'a> {
        fn visit_type_impl_trait(&mut self, t: &'a TypeImplTrait) {
            self.0.get_or_insert(t);
        }
    }
    let mut find = Find(None);
    find.visit_type(ty);
    find.0
}

/// Docs, `cfg`, lint levels and `deprecated` describe the function users call; the rest
/// (`#[instrument]`, `#[allow]` too) belongs to the body.
pub(crate) fn split_attrs(attrs: &[Attribute]) -> (Vec<Attribute>, Vec<Attribute>) {
    let mut outer = Vec::new();
    let mut inner = Vec::new();
    for attr in attrs {
        let path = attr.path();
        let is = |name: &str| path.is_ident(name);
        if is("doc") || is("cfg") || is("cfg_attr") || is("deprecated") || is("must_use") {
            outer.push(attr.clone());
        } else if is("allow") || is("warn") || is("deny") || is("expect") || is("forbid") {
            outer.push(attr.clone());
            inner.push(attr.clone());
        } else {
            inner.push(attr.clone());
        }
    }
    (outer, inner)
}
