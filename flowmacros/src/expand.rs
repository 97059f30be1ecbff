//! Stage 3: the generated code.
//!
//! `#[task] async fn extract(url: &str) -> Result<Vec<Row>, Error> { … }` becomes, in essence:
//!
//! ```text
//! fn extract<'__fc0>(url: &'__fc0 str)
//!     -> ::flowcore::TaskCall<impl ::flowcore::TaskBody<Output = Result<Vec<Row>, Error>> + use<'__fc0>>
//! {
//!     async fn extract(url: &str) -> Result<Vec<Row>, Error> { … }   // the user's function
//!     static SPEC: TaskSpec = TaskSpec { name: "extract", retry: …, hooks: … };
//!     ::flowcore::TaskCall::new(&SPEC, move |call| {
//!         run_task::<Fallible, _, _>(call, Once::new((url,), |(url,)| extract(url)), behaviour, cache)
//!     })
//! }
//! ```
//!
//! The wrapper is a plain `fn`, not an `async fn`, so the call (not its first poll) records
//! which flow run it belongs to.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::Ident;
use syn::spanned::Spanned as _;

use crate::args::{Args, Macro};
use crate::duration;
use crate::signature::Function;

pub(crate) fn expand(args: Args, function: Function, which: Macro) -> TokenStream {
    let parts = Parts::new(&args, &function);
    let Function {
        outer_attrs,
        vis,
        generics,
        args: fn_args,
        output,
        body,
        ..
    } = &function;
    let ident = function.ident();
    let names: Vec<&Ident> = fn_args.iter().map(|a| &a.name).collect();
    let types = fn_args.iter().map(|a| &a.ty);
    let captures = function.captures();
    let where_clause = &generics.where_clause;
    let Parts {
        kind,
        retry,
        hooks,
        checks,
        attempts,
        behaviour,
    } = &parts;
    let spec = Ident::new("SPEC", Span::mixed_site());

    let (call_type, body_trait, spec_type, spec_extra, start) = match which {
        Macro::Task => {
            let refresh = args.refresh_cache.as_ref().is_some_and(|r| r.value);
            let tags = args.tags.iter();
            let cache = cache(&args, &function, kind);
            (
                quote!(::flowcore::TaskCall),
                quote!(::flowcore::TaskBody),
                quote!(::flowcore::__private::TaskSpec),
                quote! {
                    refresh_cache: #refresh,
                    tags: &[#(::flowcore::__private::Cow::Borrowed(#tags)),*],
                },
                quote! {
                    ::flowcore::__private::run_task::<#kind, #output, _>(&#spec, #attempts, #behaviour, #cache)
                },
            )
        }
        Macro::Flow => (
            quote!(::flowcore::FlowCall),
            quote!(::flowcore::FlowBody),
            quote!(::flowcore::__private::FlowSpec),
            quote!(),
            quote! {
                ::flowcore::__private::run_flow::<#kind, #output, _>(&#spec, #attempts, #behaviour)
            },
        ),
    };
    let name = args
        .name
        .as_ref()
        .map_or_else(|| ident.to_string(), |n| n.value());

    quote! {
        #(#outer_attrs)*
        #vis fn #ident #generics (#(#names: #types),*)
            -> #call_type<impl #body_trait<Output = #output> + use<#(#captures),*>>
            #where_clause
        {
            #body

            static #spec: #spec_type = #spec_type {
                name: #name,
                retry: #retry,
                #spec_extra
                hooks: #hooks,
            };
            #(#checks)*
            #call_type::new(#start)
        }
    }
}

/// The pieces tasks and flows share.
struct Parts {
    /// `Fallible` or `Plain`: how the output is judged.
    kind: TokenStream,
    retry: TokenStream,
    hooks: TokenStream,
    /// Assertions that turn a missing trait into an error at the user's type.
    checks: Vec<TokenStream>,
    attempts: TokenStream,
    behaviour: TokenStream,
}

impl Parts {
    fn new(args: &Args, function: &Function) -> Self {
        let output = &function.output;
        let kind = if function.fallible {
            quote_spanned!(output.span()=> ::flowcore::__private::Fallible)
        } else {
            quote!(::flowcore::__private::Plain)
        };
        let retries = args.retries.as_ref().map_or(0, |r| r.value);

        let delays = args
            .retry_delay
            .iter()
            .flat_map(|d| &d.value.durations)
            .map(|d| duration::tokens(*d));
        let backoff = Literal::f64_suffixed(args.retry_backoff.as_ref().map_or(1.0, |b| b.value));
        let jitter = Literal::f64_suffixed(args.retry_jitter.as_ref().map_or(0.0, |j| j.value));
        let retry = quote! {
            ::flowcore::__private::RetryPolicy {
                retries: #retries,
                delays: &[#(#delays),*],
                backoff: #backoff,
                jitter: #jitter,
            }
        };

        let on_state = args.on_state.iter();
        let on_failure = args.on_failure.iter();
        let on_completion = args.on_completion.iter();
        let hooks = quote! {
            ::flowcore::__private::Hooks {
                on_state: &[#(::flowcore::__private::state_hook(#on_state)),*],
                on_failure: &[#(::flowcore::__private::hook(#on_failure)),*],
                on_completion: &[#(::flowcore::__private::hook(#on_completion)),*],
            }
        };

        let mut checks = Vec::new();
        if retries > 0 {
            for arg in &function.args {
                let ty = &arg.ty;
                checks.push(
                    quote_spanned!(ty.span()=> ::flowcore::__private::assert_retry_arg::<#ty>();),
                );
            }
        }
        if args.cache_for.is_some() {
            if args.cache_key.is_none() {
                for arg in &function.args {
                    let ty = &arg.ty;
                    checks.push(quote_spanned!(ty.span()=> ::flowcore::__private::assert_cache_arg::<#ty>();));
                }
            }
            checks.push(quote_spanned! {output.span()=>
                ::flowcore::__private::assert_cache_output::<#kind, #output>();
            });
        }

        let names: Vec<&Ident> = function.args.iter().map(|a| &a.name).collect();
        let ident = function.ident();
        let type_params = function.type_params();
        let turbofish = if type_params.is_empty() {
            quote!()
        } else {
            quote!(::<#(#type_params),*>)
        };
        let strategy = if retries > 0 {
            quote!(::flowcore::__private::Repeat)
        } else {
            quote!(::flowcore::__private::Once)
        };
        let attempts = quote! {
            #strategy::new((#(#names,)*), |(#(#names,)*)| #ident #turbofish (#(#names),*))
        };

        let retry_if = match &args.retry_if {
            Some(setting) => {
                let f = &setting.value;
                quote_spanned! {f.span()=>
                    ::core::option::Option::Some(::flowcore::__private::retry_if::<#kind, #output>(#f))
                }
            }
            None => quote!(::core::option::Option::None),
        };
        let timeout = match &args.timeout {
            Some(setting) => {
                let after = duration::tokens(setting.value);
                quote_spanned! {setting.key.span()=>
                    ::core::option::Option::Some(::flowcore::__private::Timeout {
                        after: #after,
                        error: ::flowcore::__private::timeout_error,
                    })
                }
            }
            None => quote!(::core::option::Option::None),
        };
        let behaviour = quote! {
            ::flowcore::__private::Behaviour { retry_if: #retry_if, timeout: #timeout }
        };

        Parts {
            kind,
            retry,
            hooks,
            checks,
            attempts,
            behaviour,
        }
    }
}

/// `Some(Cache::…)` for a task with `cache_for`, else `None`.
fn cache(args: &Args, function: &Function, kind: &TokenStream) -> TokenStream {
    let Some(cache_for) = &args.cache_for else {
        return quote!(::core::option::Option::None);
    };
    let ttl = duration::tokens(cache_for.value);
    let name = args
        .name
        .as_ref()
        .map_or_else(|| function.ident().to_string(), |n| n.value());
    let names = function.args.iter().map(|a| &a.name);
    match &args.cache_key {
        Some(key_fn) => {
            let f = &key_fn.value;
            quote! {
                ::core::option::Option::Some(::flowcore::__private::Cache::by_key::<#kind>(#name, #ttl, #f(#(&#names),*)))
            }
        }
        None => quote! {
            ::core::option::Option::Some(::flowcore::__private::Cache::by_args::<#kind, _>(#name, #ttl, &(#(&#names,)*)))
        },
    }
}
