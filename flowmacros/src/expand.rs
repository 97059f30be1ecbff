//! Stage 3: the generated code.
//!
//! `#[task] async fn extract(url: &str) -> Result<Vec<Row>, Error> { … }` becomes, in essence:
//!
//! ```text
//! fn extract<'__fc0>(url: &'__fc0 str)
//!     -> ::flowcore::TaskCall<impl ::flowcore::TaskBody<Output = Result<Vec<Row>, Error>> + use<'__fc0>>
//! {
//!     let spec = { static SPEC: TaskSpec = TaskSpec { name: "extract", retry: …, hooks: … }; &SPEC };
//!     let body = {
//!         async fn extract(url: &str) -> Result<Vec<Row>, Error> { … }   // the user's function
//!         extract
//!     };
//!     let _ = <Error as ::flowcore::TaskError>::text;   // checks, at the user's types
//!     let upstream = upstream_of(&[probe(&url)]);       // which task runs produced `url`
//!     ::flowcore::TaskCall::new(run_task::<Fallible, _, _>(
//!         spec, Once::new((url,), move |(url,)| body(url)), behaviour, cache, codec, upstream,
//!     ))
//! }
//! ```
//!
//! The wrapper is a plain `fn`, not an `async fn`, so the call (not its first poll) records
//! which flow run it belongs to.
//!
//! Every name the wrapper binds (the arguments, `spec`, `body`, `upstream`) has mixed-site
//! hygiene, and the user's function sits in a block of its own: the user's function and the
//! expressions in the attribute neither see nor shadow them, so an argument named like the
//! function or like a hook changes nothing. Every path is absolute (`::core::…`,
//! `::flowcore::…`, or the path given with `crate = …`), so local items named `Option`,
//! `Result` or `core` change nothing either.
//!
//! Trait bounds the user's types must meet are checked by code that names those types, written
//! with their spans, so rustc reports a missing trait at the user's argument or return type;
//! see `flowcore::__private` for how each check avoids a second error.

use proc_macro2::{Delimiter, Group, Ident, Literal, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned as _;

use crate::args::{Args, Macro};
use crate::duration;
use crate::run_name::{RunName, placeholders};
use crate::signature::{Function, display_name};

/// Where the generated code finds flowcore: `::flowcore`, or the path given with `crate = …`.
pub(crate) struct Krate(TokenStream);

impl Krate {
    pub(crate) fn new(path: Option<&syn::Path>) -> Self {
        Krate(path.map_or_else(|| quote!(::flowcore), ToTokens::to_token_stream))
    }

    /// The path with every token at `span`, for code whose errors rustc must report there.
    fn at(&self, span: Span) -> TokenStream {
        respan(self.0.clone(), span)
    }
}

impl ToTokens for Krate {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        self.0.to_tokens(tokens);
    }
}

/// The names the generated code binds: mixed-site, so the user's code can neither see nor
/// shadow them, and each different from every argument's name, since the arguments are
/// mixed-site too (`body_` if an argument is named `body`).
struct Vars {
    spec: Ident,
    body: Ident,
    cache: Ident,
    upstream: Ident,
    parameters: Ident,
    retry_if: Ident,
    cache_key: Ident,
    arguments: Ident,
    run_name: Ident,
}

impl Vars {
    fn new(function: &Function) -> Self {
        let taken: Vec<String> = function
            .args
            .iter()
            .map(|a| display_name(&a.name))
            .collect();
        let var = |name: &str| {
            let mut name = name.to_owned();
            while taken.contains(&name) {
                name.push('_');
            }
            Ident::new(&name, Span::mixed_site())
        };
        Vars {
            spec: var("spec"),
            body: var("body"),
            cache: var("cache"),
            upstream: var("upstream"),
            parameters: var("parameters"),
            retry_if: var("retry_if"),
            cache_key: var("cache_key"),
            arguments: var("arguments"),
            run_name: var("run_name"),
        }
    }
}

pub(crate) fn expand(args: Args, function: Function, which: Macro) -> TokenStream {
    let krate = Krate::new(args.krate.as_ref());
    let vars = Vars::new(&function);
    let parts = Parts::new(&args, &function, &krate, &vars);
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
    let type_params = function.type_params();
    let turbofish = if type_params.is_empty() {
        quote!()
    } else {
        quote!(::<#(#type_params),*>)
    };
    let Parts {
        kind,
        call_spans,
        retry,
        hooks,
        checks,
        retry_if_fn,
        attempts,
        behaviour,
        ..
    } = &parts;
    let call_span = call_spans.0;
    let (spec_var, body_var) = (&vars.spec, &vars.body);

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
                use #krate::__private::{NotStorable as _, Storable as _};
                (&&#krate::__private::Probe::<#kind, #output>::new()).codec()
            }
        }
    };
    let at_call = krate.at(call_span);
    let run_name_var = &vars.run_name;
    let run_name = run_name(&args, &function, run_name_var);
    let (call_type, body_trait, spec_type, spec_extra, prepare, start) = match which {
        Macro::Task => {
            let refresh = args.refresh_cache.as_ref().is_some_and(|r| r.value);
            let tags = args.tags.iter();
            let cache_var = &vars.cache;
            let cache = cache(&args, &function, &parts, &krate, &vars);
            let upstream_var = &vars.upstream;
            let traced = fn_args.iter().map(|a| {
                let (name, ty) = (&a.name, &a.ty);
                quote!((&&#krate::__private::ArgProbe::<#ty>::new()).trace(&#name))
            });
            (
                quote_spanned!(call_span=> #at_call::TaskCall),
                quote_spanned!(call_span=> #at_call::TaskBody),
                quote!(#krate::__private::TaskSpec),
                quote! {
                    refresh_cache: #refresh,
                    tags: &[#(#krate::__private::Cow::Borrowed(#tags)),*],
                },
                // `cache_key = |a| …` is called where it is written. The cache borrows the
                // arguments and the data edges are found from them, before the attempts take
                // them.
                quote! {
                    #[allow(clippy::redundant_closure_call)]
                    let #cache_var = #cache;
                    let #upstream_var = {
                        #[allow(unused_imports)]
                        use #krate::__private::{NotRecordable as _, Recordable as _};
                        #krate::__private::upstream_of(&[#(#traced),*])
                    };
                },
                call_over(
                    quote!(#krate::__private::run_task),
                    &[quote!(#kind), quote!(#output), quote!(_)],
                    quote!(#spec_var, #attempts, #behaviour, #cache_var, #codec, #upstream_var, #run_name_var),
                    *call_spans,
                ),
            )
        }
        Macro::Flow => {
            let tags = args.tags.iter();
            // The arguments that serialize, recorded as the run's parameters.
            let params_var = &vars.parameters;
            let params = fn_args.iter().map(|a| {
                let (name, ty) = (&a.name, &a.ty);
                let key = display_name(name);
                quote!((#key, (&&#krate::__private::ArgProbe::<#ty>::new()).json(&#name)))
            });
            (
                quote_spanned!(call_span=> #at_call::FlowCall),
                quote_spanned!(call_span=> #at_call::FlowBody),
                quote!(#krate::__private::FlowSpec),
                quote! {
                    tags: &[#(#krate::__private::Cow::Borrowed(#tags)),*],
                },
                quote! {
                    let #params_var = {
                        #[allow(unused_imports)]
                        use #krate::__private::{NotRecordable as _, Recordable as _};
                        #krate::__private::parameters(&[#(#params),*])
                    };
                },
                call_over(
                    quote!(#krate::__private::run_flow),
                    &[quote!(#kind), quote!(#output), quote!(_)],
                    quote!(#spec_var, #attempts, #behaviour, #codec, #params_var, #run_name_var),
                    *call_spans,
                ),
            )
        }
    };
    let name = args
        .name
        .as_ref()
        .map_or_else(|| ident.to_string(), |n| n.value());

    let background = match (which, &args.background) {
        (Macro::Task, Some(_)) => Some(background(&function, &krate, &vars, &name)),
        _ => None,
    };
    // A background task's body is a `Background`, a `TaskBody` that also says what its
    // delayed runs give back.
    let (start, body_trait, value_binding, background_items) = match &background {
        Some(b) => {
            let (marker, arguments, value) = (&b.marker, &vars.arguments, &b.value);
            (
                quote! {
                    #krate::__private::Backgrounded::<#marker, _>::new(#arguments, #start)
                },
                quote_spanned!(call_span=> #at_call::Background),
                quote!(, Value = #value),
                b.items.clone(),
            )
        }
        None => (start, body_trait, quote!(), quote!()),
    };
    let call = call_over(quote!(#call_type::new), &[], start, *call_spans);
    // The opaque type carries `run_task`'s bounds too: written over `E` like the call.
    let (first, last) = *call_spans;
    let opaque = quote_spanned!(first=> impl);
    let close = quote_spanned!(last=> >);
    let returns = quote_spanned! {last=>
        -> #call_type<#opaque #body_trait<Output = #output #value_binding> + use<#(#captures),* #close>
    };
    quote! {
        #(#outer_attrs)*
        #vis fn #ident #generics (#(#names: #types),*)
            #returns
            #where_clause
        {
            let #spec_var: &'static #spec_type = {
                static SPEC: #spec_type = #spec_type {
                    name: #name,
                    retry: #retry,
                    #spec_extra
                    hooks: #hooks,
                    span: #krate::__private::RunCallsite::new(),
                    registration: #krate::__private::Registration::new(),
                };
                &SPEC
            };
            let #body_var = {
                // The attribute requires an `async fn`, with or without an `.await` in it.
                #[allow(clippy::unused_async)]
                #body
                #ident #turbofish
            };
            #(#checks)*
            #background_items
            #retry_if_fn
            #run_name
            #prepare
            #call
        }
    }
}

/// `let run_name: Option<String> = …;`: the name `task_run_name`/`flow_run_name` gives the
/// run, made from the arguments before the run takes them. A template becomes a `format!`
/// with each placeholder's argument passed by name; the arguments are mixed-site, which the
/// template's own captures would not see. Written at the template or the function, so a
/// placeholder's type that is not `Display`, or a function of the wrong type, is reported
/// there.
fn run_name(args: &Args, function: &Function, var: &Ident) -> TokenStream {
    let Some(setting) = &args.run_name else {
        return quote! {
            let #var: ::core::option::Option<::std::string::String> = ::core::option::Option::None;
        };
    };
    let value = match &setting.value {
        RunName::Template(template) => {
            let mut used: Vec<String> = Vec::new();
            for p in placeholders(&template.value()).unwrap_or_default() {
                if !used.contains(&p.name) {
                    used.push(p.name);
                }
            }
            let named = used.iter().filter_map(|name| {
                let arg = function
                    .args
                    .iter()
                    .find(|a| display_name(&a.name) == *name)?;
                let key = Ident::new(name, template.span());
                let ident = &arg.name;
                Some(quote_spanned!(template.span()=> #key = #ident))
            });
            quote_spanned!(template.span()=> ::std::format!(#template, #(#named),*))
        }
        RunName::Function(f) => {
            // Called with references to the arguments, so deref coercion applies as in any
            // call: `fn(&str, &[u32])` names a task of `String` and `Vec<u32>`.
            let names = function.args.iter().map(|a| &a.name);
            quote_spanned! {f.span()=>
                ::std::string::String::from((#f)(#(&#names),*))
            }
        }
    };
    quote! {
        // The function may return a `String` already, or be a closure written in place.
        #[allow(clippy::useless_conversion, clippy::redundant_closure_call)]
        let #var: ::core::option::Option<::std::string::String> =
            ::core::option::Option::Some(#value);
    }
}

/// What `background` adds to a task: the arguments as JSON, taken before they move into the
/// run, and the marker type whose `BackgroundMarker` impl tells workers how to run the task
/// from JSON. Each argument's type and the value's are named through a trait at the user's
/// type (`BackgroundArg`, `BackgroundValue`), so a type that is not a serde type is reported
/// there, once.
struct BackgroundParts {
    marker: Ident,
    value: TokenStream,
    items: TokenStream,
}

fn background(function: &Function, krate: &Krate, vars: &Vars, name: &str) -> BackgroundParts {
    let output = &function.output;
    let marker = Ident::new("Background", Span::mixed_site());
    // Written at the user's type: the `BackgroundValue` bound of the marker's `Value` is
    // reported there when the type is not a serde type.
    let value = match (function.fallible, &function.ok_type) {
        (true, Some(t)) => quote!(#t),
        (false, _) => quote!(#output),
        (true, None) => over(
            quote!(<#krate::__private::Fallible as #krate::__private::Outcome<#output>>::Value),
            outer_spans(output),
        ),
    };
    let names: Vec<&Ident> = function.args.iter().map(|a| &a.name).collect();
    let types: Vec<&syn::Type> = function.args.iter().map(|a| &a.ty).collect();
    let count = names.len();
    let ident = function.ident();
    let arguments = &vars.arguments;
    let items = quote! {
        let #arguments = #krate::__private::background_arguments([
            #(<#types as #krate::__private::BackgroundArg>::to_json(&#names)),*
        ]);
        struct #marker;
        impl #krate::__private::BackgroundMarker for #marker {
            type Value = #value;
            const TASK: &'static #krate::__private::BackgroundTask =
                &#krate::__private::BackgroundTask {
                    name: #name,
                    start: |arguments, claim| {
                        #[allow(unused_mut, unused_variables)]
                        let mut arguments =
                            #krate::__private::decode_arguments(#name, arguments, #count)?;
                        #(
                            let #names = #krate::__private::argument(
                                #name,
                                <#types as #krate::__private::BackgroundArg>::from_json(
                                    ::core::iter::Iterator::next(&mut arguments)
                                        .unwrap_or_default(),
                                ),
                            )?;
                        )*
                        ::core::result::Result::Ok(
                            #krate::__private::run_claimed(#ident(#(#names),*), claim),
                        )
                    },
                };
        }
    };
    BackgroundParts {
        marker,
        value,
        items,
    }
}

/// The pieces tasks and flows share.
struct Parts {
    /// `Fallible` or `Plain`: how the output is judged.
    kind: TokenStream,
    /// `kind` again, written over the cached value's type (see [`cache`]).
    cache_kind: TokenStream,
    /// Where errors about the start of the run go: over `E` of `Result<T, E>`, the only type
    /// the runtime's bounds there can fail for (when `E` is not `Display`), where the check
    /// of `E` fails first.
    call_spans: (Span, Span),
    retry: TokenStream,
    hooks: TokenStream,
    /// Code that turns a missing trait into an error at the user's type.
    checks: Vec<TokenStream>,
    /// `let retry_if: fn(&E) -> bool = f;`, when `retry_if = f` is given.
    retry_if_fn: TokenStream,
    attempts: TokenStream,
    behaviour: TokenStream,
}

impl Parts {
    fn new(args: &Args, function: &Function, krate: &Krate, vars: &Vars) -> Self {
        let output = &function.output;
        // For `Result<T, E>`: `E` as written, else as the output's associated type.
        let error = match &function.err_type {
            Some(e) => Some((quote!(#e), outer_spans(e))),
            None if function.fallible => {
                // From the output's first token to its last, so rustc underlines all of it.
                let (first, last) = outer_spans(output);
                let open = quote_spanned!(first=> <);
                let error = quote_spanned!(last=> Error);
                Some((
                    quote! {
                        #open #output as #krate::__private::ResultError>::#error
                    },
                    (first, last),
                ))
            }
            None => None,
        };
        // `Fallible` judges a `Result`; its bound on `E` is checked first (below). Written over
        // `E`, so that rustc reports a failure of the same bound there, and only once.
        let kind_over = |spans: (Span, Span)| match &error {
            Some(_) => over(quote!(#krate::__private::Fallible), spans),
            None => quote!(#krate::__private::Plain),
        };
        let error_spans = error.as_ref().map_or_else(|| outer_spans(output), |e| e.1);
        let kind = kind_over(error_spans);
        // The stored value: the output, or the `T` of `Result<T, E>`.
        let cache_value = if function.fallible {
            function.ok_type.as_ref()
        } else {
            Some(output)
        };
        // The cache's own `Serialize` bounds on the value then fail where the check below
        // does, and rustc reports the failure once.
        let cache_kind = kind_over(cache_value.map_or_else(|| outer_spans(output), outer_spans));
        let call_spans = if function.fallible {
            error_spans
        } else {
            (Span::call_site(), Span::call_site())
        };
        let retries = args.retries.as_ref().map_or(0, |r| r.value);

        let delays = args
            .retry_delay
            .iter()
            .flat_map(|d| &d.value.durations)
            .map(|d| duration::tokens(*d, krate));
        let backoff = Literal::f64_suffixed(args.retry_backoff.as_ref().map_or(1.0, |b| b.value));
        let jitter = Literal::f64_suffixed(args.retry_jitter.as_ref().map_or(0.0, |j| j.value));
        let retry = quote! {
            #krate::__private::RetryPolicy {
                retries: #retries,
                delays: &[#(#delays),*],
                backoff: #backoff,
                jitter: #jitter,
            }
        };

        // Each hook is coerced to the field's function pointer type where it is written, so
        // a wrong signature is reported at the hook, with the signature wanted.
        let (on_state, on_failure, on_completion, on_cancellation, on_crashed) = (
            &args.on_state,
            &args.on_failure,
            &args.on_completion,
            &args.on_cancellation,
            &args.on_crashed,
        );
        let hooks = quote! {
            #krate::__private::Hooks {
                on_state: &[#(#on_state),*],
                on_failure: &[#(#on_failure),*],
                on_completion: &[#(#on_completion),*],
                on_cancellation: &[#(#on_cancellation),*],
                on_crashed: &[#(#on_crashed),*],
            }
        };

        let mut checks = Vec::new();
        if let Some((e, _)) = &error {
            // `E: Display`, through flowcore's trait with its message: the run's own bound
            // on `E` would say the same with notes about flowcore's internals.
            checks.push(quote! {
                let _ = <#e as #krate::TaskError>::text;
            });
        }
        if args.cache_for.is_some() {
            checks.push(match cache_value {
                Some(t) => quote! {
                    #krate::__private::assert_cache_value::<#t>();
                },
                None => {
                    let assert = call_over(
                        quote!(#krate::__private::assert_cache_output),
                        &[quote!(#kind), quote!(#output)],
                        quote!(),
                        outer_spans(output),
                    );
                    quote!(#assert;)
                }
            });
        }

        let names: Vec<&Ident> = function.args.iter().map(|a| &a.name).collect();
        let body_var = &vars.body;
        let attempts = if retries > 0 {
            // Each argument is copied by a call naming its type, so one that is not `Clone`
            // is reported at its type.
            let copies = function.args.iter().map(|a| {
                let (name, ty) = (&a.name, &a.ty);
                quote!(<#ty as #krate::__private::RetryArg>::retry_clone(#name))
            });
            quote! {
                #krate::__private::Repeat::new(
                    (#(#names,)*),
                    |(#(#names,)*)| (#(#copies,)*),
                    move |(#(#names,)*)| #body_var(#(#names),*),
                )
            }
        } else {
            quote! {
                #krate::__private::Once::new((#(#names,)*), move |(#(#names,)*)| #body_var(#(#names),*))
            }
        };

        // `retry_if = f` is coerced to `fn(&E) -> bool` by a `let` whose type is written at
        // the key: a wrong signature is reported at `f`, "expected due to" `retry_if`.
        let retry_if_var = &vars.retry_if;
        let (retry_if_fn, retry_if) = match (&args.retry_if, &error) {
            (Some(setting), Some((e, _))) => {
                let f = &setting.value;
                let fn_type = quote_spanned!(setting.key.span()=> fn(&#e) -> bool);
                (
                    quote!(let #retry_if_var: #fn_type = #f;),
                    quote!(::core::option::Option::Some(#retry_if_var)),
                )
            }
            // `retry_if` without a `Result` is an error of `validate`.
            _ => (quote!(), quote!(::core::option::Option::None)),
        };
        let timeout = match (&args.timeout, &error) {
            (Some(setting), Some((e, _))) => {
                let after = duration::tokens(setting.value, krate);
                // Naming `E` puts a missing `From<TimeoutError>` at the error type.
                quote_spanned! {setting.key.span()=>
                    ::core::option::Option::Some(#krate::__private::Timeout {
                        after: #after,
                        error: <#e as #krate::__private::FromTimeout>::timeout_result,
                    })
                }
            }
            // `timeout` without a `Result` is an error of `validate`.
            _ => quote!(::core::option::Option::None),
        };
        let behaviour = quote! {
            #krate::__private::Behaviour { retry_if: #retry_if, timeout: #timeout }
        };

        Parts {
            kind,
            cache_kind,
            call_spans,
            retry,
            hooks,
            checks,
            retry_if_fn,
            attempts,
            behaviour,
        }
    }
}

/// `Some(Cache::…)` for a task with `cache_for`, else `None`. Its `kind` is written over the
/// cached value's type, where the check of that type fails first, and the call over `E`, where
/// the same bounds fail for the run itself.
fn cache(
    args: &Args,
    function: &Function,
    parts: &Parts,
    krate: &Krate,
    vars: &Vars,
) -> TokenStream {
    let Some(cache_for) = &args.cache_for else {
        return quote!(::core::option::Option::None);
    };
    let ttl = duration::tokens(cache_for.value, krate);
    let name = args
        .name
        .as_ref()
        .map_or_else(|| function.ident().to_string(), |n| n.value());
    let key = match &args.cache_key {
        Some(key_fn) => {
            // `f` is taken first, where the names below are not yet bound. The arguments are
            // then lent to it under their own names, written at `f` with call-site hygiene,
            // so a wrong signature is reported at `f` as in the user's own code (and rustc
            // suggests no edit of the attribute: `&*x` is a borrow whose text is not there).
            let f = &key_fn.value;
            let mut key_fn_var = vars.cache_key.clone();
            key_fn_var.set_span(Span::mixed_site().located_at(f.span()));
            let refs = function.args.iter().map(|a| &a.name);
            let lent: Vec<Ident> = function
                .args
                .iter()
                .map(|a| {
                    let mut name = a.name.clone();
                    name.set_span(f.span());
                    name
                })
                .collect();
            let lent_refs = lent.iter().map(|name| quote_spanned!(f.span()=> &*#name));
            quote! {
                {
                    let #key_fn_var = #f;
                    let (#(#lent,)*) = (#(&#refs,)*);
                    #key_fn_var(#(#lent_refs),*)
                }
            }
        }
        None => {
            // Each argument goes into the key through a call naming its type, so one that is
            // not `Serialize` is reported at its type.
            let parts = function.args.iter().map(|a| {
                let (name, ty) = (&a.name, &a.ty);
                quote!(<#ty as #krate::__private::CacheKeyArg>::key_part(&#name))
            });
            quote!(#krate::__private::ArgsKey(&[#(#parts),*]))
        }
    };
    let kind = &parts.cache_kind;
    let new = call_over(
        quote!(#krate::__private::Cache::new),
        &[quote!(#kind)],
        quote!(#name, #ttl, #key),
        parts.call_spans,
    );
    quote!(::core::option::Option::Some(#new))
}

/// The spans of a type's first and last tokens.
fn outer_spans(ty: &impl ToTokens) -> (Span, Span) {
    let tokens: Vec<_> = ty.to_token_stream().into_iter().collect();
    let first = tokens.first().map_or_else(Span::call_site, TokenTree::span);
    let last = tokens.last().map_or(first, TokenTree::span);
    (first, last)
}

/// `tokens` (a path) written over a user's type: up to its first name at the type's first
/// token (a leading `::` is one token to rustc) and the rest at its last, so rustc's span for
/// them is the type's, and an error about them is reported there, merged with a check's error
/// at the same type.
fn over(tokens: TokenStream, (first, last): (Span, Span)) -> TokenStream {
    let mut span = first;
    tokens
        .into_iter()
        .map(|mut tree| {
            tree.set_span(span);
            if let TokenTree::Ident(_) = tree {
                span = last;
            }
            tree
        })
        .collect()
}

/// `callee::<generics>(args)` with the callee's path, turbofish and parentheses written over
/// `spans`, so rustc's span for the call is the user's type there: a bound of the callee that
/// fails for that type is reported once, merged with the check's error at the same type.
fn call_over(
    callee: TokenStream,
    generics: &[TokenStream],
    args: TokenStream,
    spans: (Span, Span),
) -> TokenStream {
    let callee = over(callee, spans);
    let turbofish = if generics.is_empty() {
        quote!()
    } else {
        quote_spanned!(spans.1=> ::<#(#generics),*>)
    };
    let mut args = Group::new(Delimiter::Parenthesis, args);
    args.set_span(spans.1);
    quote!(#callee #turbofish #args)
}

/// `tokens` with every span set to `span` (the tokens of a path have no groups).
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tree| {
            tree.set_span(span);
            tree
        })
        .collect()
}

/// Whether a type mentions a reference or a lifetime.
pub(crate) fn borrows(ty: &syn::Type) -> bool {
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
