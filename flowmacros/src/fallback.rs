//! The expansion when the attribute has an error: the errors, and beside them the function
//! with the shape a correct expansion has, as tokio's `token_stream_with_error` does. Callers
//! type-check against it (`f(x).await`, `.with_run()`, `.submit()`), so one mistake gives one
//! error, and not one more per caller.
//!
//! `#[task(colour = "red")] async fn paint(wall: u32) -> u32 { … }` becomes:
//!
//! ```text
//! compile_error!("unknown argument `colour` …");
//! fn paint(_: u32) -> ::flowcore::TaskCall<::flowcore::__private::UnexpandedTask<u32>> {
//!     #[allow(dead_code)]
//!     async fn paint(wall: u32) -> u32 { … }   // the user's function, still checked
//!     ::core::unimplemented!("…")
//! }
//! ```

use proc_macro2::TokenStream;
use quote::quote;
use syn::visit_mut::{self, VisitMut};
use syn::{FnArg, ReturnType, Type};

use crate::args::Macro;
use crate::expand::Krate;
use crate::item::FnItem;
use crate::signature::split_attrs;

pub(crate) fn expand(item: &FnItem, which: Macro, krate: &Krate) -> TokenStream {
    let FnItem {
        attrs,
        vis,
        sig,
        body,
    } = item;
    let (outer_attrs, inner_attrs) = split_attrs(attrs);
    let ident = &sig.ident;
    let generics = &sig.generics;
    let where_clause = &generics.where_clause;
    // The arguments are not used: `_` keeps their names from being reported unused.
    let inputs = sig.inputs.iter().map(|input| match input {
        FnArg::Receiver(receiver) => quote!(#receiver),
        FnArg::Typed(typed) => {
            let (attrs, ty) = (&typed.attrs, &typed.ty);
            quote!(#(#attrs)* _: #ty)
        }
    });
    let output = match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => {
            let mut ty = (**ty).clone();
            NoImplTrait.visit_type_mut(&mut ty);
            quote!(#ty)
        }
    };
    let (call, body_type) = match which {
        Macro::Task => (
            quote!(#krate::TaskCall),
            quote!(#krate::__private::UnexpandedTask),
        ),
        Macro::Flow => (
            quote!(#krate::FlowCall),
            quote!(#krate::__private::UnexpandedFlow),
        ),
    };
    // The user's function, so that errors in it are still reported and what it uses counts as
    // used; not when it cannot be a nested function (a `self` receiver, C variadics), nor as
    // a `const fn`, which cannot be `async`.
    let original = (sig.receiver().is_none() && sig.variadic.is_none()).then(|| {
        let mut sig = sig.clone();
        sig.constness = None;
        quote! {
            #[allow(dead_code, clippy::unused_async)]
            #(#inner_attrs)*
            #sig #body
        }
    });
    let message = format!("{} has an error, reported above", which.attr());
    quote! {
        #(#outer_attrs)*
        #vis fn #ident #generics (#(#inputs),*) -> #call<#body_type<#output>> #where_clause {
            #original
            ::core::unimplemented!(#message)
        }
    }
}

/// Replaces `impl Trait` in the output (an error of its own) with `Infallible`, which the
/// function can return without a body: a type rustc cannot infer would be a second error.
/// `Infallible` is `Display`, `Debug`, `Clone`, `Error`, `Send` and `'static`, so most
/// callers of an `impl Display` task still type-check.
struct NoImplTrait;

impl VisitMut for NoImplTrait {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::ImplTrait(_) = ty {
            *ty = syn::parse_quote!(::core::convert::Infallible);
        }
        visit_mut::visit_type_mut(self, ty);
    }
}
