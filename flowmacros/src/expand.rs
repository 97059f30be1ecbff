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
//!     let upstream = upstream_of(&[probe(&url)]);   // which task runs produced `url`
//!     ::flowcore::TaskCall::new(run_task::<Fallible, _, _>(
//!         &SPEC, Once::new((url,), |(url,)| extract(url)), behaviour, cache, codec, upstream,
//!     ))
//! }
//! ```
//!
//! The wrapper is a plain `fn`, not an `async fn`, so the call (not its first poll) records
//! which flow run it belongs to.
//!
//! Trait bounds the user's types must meet are checked by calls that name those types, written
//! with their spans (`quote_spanned!`), so rustc reports a missing trait at the user's argument
//! or return type; see `flowcore::__private` for how each check avoids a second error.

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
        cache_kind,
        call_span,
        retry,
        hooks,
        checks,
        attempts,
        behaviour,
    } = &parts;
    let spec = Ident::new("SPEC", Span::mixed_site());

    // The cache borrows the arguments, so it is made before the attempts take them.
    let cache_var = Ident::new("cache", Span::mixed_site());
    // Whether outputs can be stored, for a resumed flow run to reuse them: `Some` exactly when
    // the output (or the `T` of `Result<T, E>`) serializes; nothing is required of it.
    // An output that borrows (`&'static str`) is never stored: the probe cannot see that
    // it does not deserialize for every lifetime, and the compiler would reject the choice.
    let codec = if borrows(output) {
        quote!(::core::option::Option::None)
    } else {
        quote! {
            {
                #[allow(unused_imports)]
                use ::flowcore::__private::{NotStorable as _, Storable as _};
                (&&::flowcore::__private::Probe::<#kind, #output>::new()).codec()
            }
        }
    };
    let (call_type, body_trait, spec_type, spec_extra, prepare, start) = match which {
        Macro::Task => {
            let refresh = args.refresh_cache.as_ref().is_some_and(|r| r.value);
            let tags = args.tags.iter();
            let cache = cache(&args, &function, cache_kind, *call_span);
            let upstream_var = Ident::new("upstream", Span::mixed_site());
            let traced = fn_args.iter().map(|a| {
                let (name, ty) = (&a.name, &a.ty);
                quote!((&&::flowcore::__private::ArgProbe::<#ty>::new()).trace(&#name))
            });
            (
                quote_spanned!(*call_span=> ::flowcore::TaskCall),
                quote_spanned!(*call_span=> ::flowcore::TaskBody),
                quote!(::flowcore::__private::TaskSpec),
                quote! {
                    refresh_cache: #refresh,
                    tags: &[#(::flowcore::__private::Cow::Borrowed(#tags)),*],
                },
                // `cache_key = |a| …` is called where it is written. The data edges are
                // found from the arguments before the attempts take them.
                quote! {
                    #[allow(clippy::redundant_closure_call)]
                    let #cache_var = #cache;
                    let #upstream_var = {
                        #[allow(unused_imports)]
                        use ::flowcore::__private::{NotRecordable as _, Recordable as _};
                        ::flowcore::__private::upstream_of(&[#(#traced),*])
                    };
                },
                quote_spanned! {*call_span=>
                    ::flowcore::__private::run_task::<#kind, #output, _>(&#spec, #attempts, #behaviour, #cache_var, #codec, #upstream_var)
                },
            )
        }
        Macro::Flow => {
            // The arguments that serialize, recorded as the run's parameters.
            let params_var = Ident::new("parameters", Span::mixed_site());
            let params = fn_args.iter().map(|a| {
                let (name, ty) = (&a.name, &a.ty);
                let key = name.to_string();
                quote!((#key, (&&::flowcore::__private::ArgProbe::<#ty>::new()).json(&#name)))
            });
            (
                quote_spanned!(*call_span=> ::flowcore::FlowCall),
                quote_spanned!(*call_span=> ::flowcore::FlowBody),
                quote!(::flowcore::__private::FlowSpec),
                quote!(),
                quote! {
                    let #params_var = {
                        #[allow(unused_imports)]
                        use ::flowcore::__private::{NotRecordable as _, Recordable as _};
                        ::flowcore::__private::parameters(&[#(#params),*])
                    };
                },
                quote_spanned! {*call_span=>
                    ::flowcore::__private::run_flow::<#kind, #output, _>(&#spec, #attempts, #behaviour, #codec, #params_var)
                },
            )
        }
    };
    let name = args
        .name
        .as_ref()
        .map_or_else(|| ident.to_string(), |n| n.value());

    let call = quote_spanned!(*call_span=> #call_type::new(#start));
    let returns = quote_spanned! {*call_span=>
        -> #call_type<impl #body_trait<Output = #output> + use<#(#captures),*>>
    };
    quote! {
        #(#outer_attrs)*
        #vis fn #ident #generics (#(#names: #types),*)
            #returns
            #where_clause
        {
            // The attribute requires an `async fn`, with or without an `.await` in it.
            #[allow(clippy::unused_async)]
            #body

            static #spec: #spec_type = #spec_type {
                name: #name,
                retry: #retry,
                #spec_extra
                hooks: #hooks,
                span: ::flowcore::__private::RunCallsite::new(),
            };
            #(#checks)*
            #prepare
            #call

        }
    }
}

/// The pieces tasks and flows share.
struct Parts {
    /// `Fallible` or `Plain`: how the output is judged.
    kind: TokenStream,
    /// `kind` again, written at the cached value's type (see [`cache`]).
    cache_kind: TokenStream,
    /// Where errors about the start of the run go: at `E` of `Result<T, E>`, the only type
    /// the runtime's bounds there can fail for (when `E` is not `Display`).
    call_span: Span,
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
        // For `Result<T, E>`: `E` as written, else as the output's associated type.
        let (error_type, error_span) = match &function.err_type {
            Some(e) => (Some(quote!(#e)), e.span()),
            None if function.fallible => {
                // From the output's first token to its last, so rustc underlines all of it.
                let (first, last) = outer_spans(output);
                let open = quote_spanned!(first=> <);
                let error = quote_spanned!(last=> Error);
                (
                    Some(quote! {
                        #open #output as ::flowcore::__private::ResultError>::#error
                    }),
                    output.span(),
                )
            }
            None => (None, output.span()),
        };
        // `Fallible` judges a `Result`; its bound on `E` is reported with flowcore's message.
        // Written at `E`, so rustc points there.
        let kind_at = |span: Span| match &error_type {
            Some(_) => quote_spanned!(span=> ::flowcore::__private::Fallible),
            None => quote!(::flowcore::__private::Plain),
        };
        let kind = kind_at(error_span);
        // The stored value: the output, or the `T` of `Result<T, E>`.
        let cache_value = if function.fallible {
            function.ok_type.as_ref()
        } else {
            Some(output)
        };
        // The cache's own `Serialize` bounds on the value then fail where `assert_cache_value`
        // does, and rustc reports the failure once.
        let cache_kind = kind_at(cache_value.map_or(output.span(), |t| t.span()));
        let call_span = if function.fallible {
            error_span
        } else {
            Span::call_site()
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

        // Each hook is coerced where it is written, so a wrong signature is reported there.
        let on_state = args
            .on_state
            .iter()
            .map(|f| quote_spanned!(f.span()=> ::flowcore::__private::state_hook(#f)));
        let on_failure = args
            .on_failure
            .iter()
            .map(|f| quote_spanned!(f.span()=> ::flowcore::__private::hook(#f)));
        let on_completion = args
            .on_completion
            .iter()
            .map(|f| quote_spanned!(f.span()=> ::flowcore::__private::hook(#f)));
        let hooks = quote! {
            ::flowcore::__private::Hooks {
                on_state: &[#(#on_state),*],
                on_failure: &[#(#on_failure),*],
                on_completion: &[#(#on_completion),*],
            }
        };

        let mut checks = Vec::new();
        if args.cache_for.is_some() {
            checks.push(match cache_value {
                Some(t) => quote_spanned! {t.span()=>
                    ::flowcore::__private::assert_cache_value::<#t>();
                },
                None => quote_spanned! {output.span()=>
                    ::flowcore::__private::assert_cache_output::<#kind, #output>();
                },
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
        let attempts = if retries > 0 {
            // Each argument is copied by a call naming its type, so one that is not `Clone`
            // is reported at its type.
            let copies = function.args.iter().map(|a| {
                let (name, ty) = (&a.name, &a.ty);
                quote_spanned!(ty.span()=> ::flowcore::__private::retry_clone::<#ty>(#name))
            });
            quote! {
                ::flowcore::__private::Repeat::new(
                    (#(#names,)*),
                    |(#(#names,)*)| (#(#copies,)*),
                    |(#(#names,)*)| #ident #turbofish (#(#names),*),
                )
            }
        } else {
            quote! {
                ::flowcore::__private::Once::new((#(#names,)*), |(#(#names,)*)| #ident #turbofish (#(#names),*))
            }
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
                // Naming `E` puts a missing `From<TimeoutError>` at the error type.
                let error = match &error_type {
                    Some(e) => quote_spanned! {error_span=>
                        ::flowcore::__private::timeout_error::<_, #e>
                    },
                    None => {
                        quote_spanned!(setting.key.span()=> ::flowcore::__private::timeout_error)
                    }
                };
                quote_spanned! {setting.key.span()=>
                    ::core::option::Option::Some(::flowcore::__private::Timeout {
                        after: #after,
                        error: #error,
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
            cache_kind,
            call_span,
            retry,
            hooks,
            checks,
            attempts,
            behaviour,
        }
    }
}

/// `Some(Cache::…)` for a task with `cache_for`, else `None`. `kind` is written at the cached
/// value's type and the call at `call_span`, where the same bounds fail for the run itself.
fn cache(args: &Args, function: &Function, kind: &TokenStream, call_span: Span) -> TokenStream {
    let Some(cache_for) = &args.cache_for else {
        return quote!(::core::option::Option::None);
    };
    let ttl = duration::tokens(cache_for.value);
    let name = args
        .name
        .as_ref()
        .map_or_else(|| function.ident().to_string(), |n| n.value());
    let key = match &args.cache_key {
        Some(key_fn) => {
            let f = &key_fn.value;
            // The call and its arguments are written at the function's path, so a wrong
            // signature is reported there.
            let names = function.args.iter().map(|a| {
                let mut name = a.name.clone();
                name.set_span(f.span());
                name
            });
            // A closure is called as `(|a| …)(&a)`.
            let callee = match f {
                syn::Expr::Closure(_) => quote_spanned!(f.span()=> (#f)),
                _ => quote!(#f),
            };
            quote_spanned!(f.span()=> #callee(#(&#names),*))
        }
        None => {
            // Each argument goes into the key through a call naming its type, so one that is
            // not `Serialize` is reported at its type.
            let parts = function.args.iter().map(|a| {
                let (name, ty) = (&a.name, &a.ty);
                quote_spanned!(ty.span()=> ::flowcore::__private::cache_arg::<#ty>(&#name))
            });
            quote!(::flowcore::__private::ArgsKey(&[#(#parts),*]))
        }
    };
    let by_key = quote_spanned! {call_span=>
        ::flowcore::__private::Cache::new::<#kind>(#name, #ttl, #key)
    };
    quote!(::core::option::Option::Some(#by_key))
}

/// The spans of a type's first and last tokens.
fn outer_spans(ty: &syn::Type) -> (Span, Span) {
    use quote::ToTokens as _;
    let tokens: Vec<_> = ty.to_token_stream().into_iter().collect();
    let first = tokens.first().map_or_else(Span::call_site, |t| t.span());
    let last = tokens.last().map_or(first, |t| t.span());
    (first, last)
}

/// Whether a type mentions a reference or a lifetime.
fn borrows(ty: &syn::Type) -> bool {
    use syn::visit::Visit;
    struct Finder(bool);
    impl Visit<'_> for Finder {
        fn visit_lifetime(&mut self, _: &syn::Lifetime) {
            self.0 = true;
        }
        fn visit_type_reference(&mut self, _: &syn::TypeReference) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    finder.visit_type(ty);
    finder.0
}
