//! Stage 1: the attribute's arguments, parsed into a typed struct. Every bad argument becomes
//! a `syn::Error` at its own tokens.

use std::time::Duration;

use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, ExprUnary, Ident, Lit, LitStr, Meta, Path, Token, UnOp};

use crate::duration;
use crate::errors::Errors;
use crate::run_name::RunName;

/// Which attribute is being expanded.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Macro {
    Task,
    Flow,
}

impl Macro {
    pub(crate) fn attr(self) -> &'static str {
        match self {
            Macro::Task => "#[task]",
            Macro::Flow => "#[flow]",
        }
    }

    pub(crate) fn noun(self) -> &'static str {
        match self {
            Macro::Task => "task",
            Macro::Flow => "flow",
        }
    }
}

/// One argument's value with the key it was given under, for errors about the argument.
pub(crate) struct Setting<T> {
    pub key: Ident,
    pub value: T,
}

/// `retry_delay`: one duration, or a list giving the delay before each retry.
pub(crate) struct Delays {
    pub durations: Vec<Duration>,
    pub is_list: bool,
}

/// Everything `#[task(...)]` or `#[flow(...)]` can say; absent keys are `None` or empty.
#[derive(Default)]
pub(crate) struct Args {
    pub name: Option<LitStr>,
    pub retries: Option<Setting<u32>>,
    pub retry_delay: Option<Setting<Delays>>,
    pub retry_backoff: Option<Setting<f64>>,
    pub retry_jitter: Option<Setting<f64>>,
    pub retry_if: Option<Setting<Expr>>,
    pub timeout: Option<Setting<Duration>>,
    pub cache_for: Option<Setting<Duration>>,
    pub cache_key: Option<Setting<Expr>>,
    pub refresh_cache: Option<Setting<bool>>,
    pub tags: Vec<LitStr>,
    /// `task_run_name` or `flow_run_name`, whichever the attribute takes.
    pub run_name: Option<Setting<RunName>>,
    pub on_state: Vec<Expr>,
    pub on_failure: Vec<Expr>,
    pub on_completion: Vec<Expr>,
    pub on_cancellation: Vec<Expr>,
    pub on_crashed: Vec<Expr>,
    /// `crate = "my_reexport::flowcore"`: where the generated code finds flowcore.
    pub krate: Option<Path>,
    /// `background`: the task can be delayed for workers, its arguments and output sent as
    /// JSON.
    pub background: Option<Ident>,
}

/// Every key, whether `#[flow]` accepts it too, and how its value is written.
const KEYS: &[(&str, bool, &str)] = &[
    ("name", true, "name = \"extract\""),
    ("retries", true, "retries = 3"),
    (
        "retry_delay",
        true,
        "retry_delay = \"15s\" or retry_delay = [\"1s\", \"10s\"]",
    ),
    ("retry_backoff", true, "retry_backoff = 2.0"),
    ("retry_jitter", true, "retry_jitter = 0.2"),
    ("retry_if", true, "retry_if = is_transient"),
    ("timeout", true, "timeout = \"30s\""),
    ("cache_for", false, "cache_for = \"1d\""),
    ("cache_key", false, "cache_key = key_fn"),
    ("refresh_cache", false, "refresh_cache = true"),
    ("tags", true, "tags = [\"db\", \"http\"]"),
    (
        "task_run_name",
        false,
        "task_run_name = \"fetch-{url}\" or task_run_name = name_fn",
    ),
    (
        "flow_run_name",
        true,
        "flow_run_name = \"etl-{date}\" or flow_run_name = name_fn",
    ),
    (
        "on_state",
        true,
        "on_state = alert_failed or on_state = [a, b]",
    ),
    (
        "on_failure",
        true,
        "on_failure = notify or on_failure = [a, b]",
    ),
    (
        "on_completion",
        true,
        "on_completion = notify or on_completion = [a, b]",
    ),
    (
        "on_cancellation",
        true,
        "on_cancellation = notify or on_cancellation = [a, b]",
    ),
    (
        "on_crashed",
        true,
        "on_crashed = notify or on_crashed = [a, b]",
    ),
    ("crate", true, "crate = \"my_reexport::flowcore\""),
    ("background", false, "background"),
];

/// How `key` is written, in backticks: "`retries = 3`", "`on_state = f` or `on_state = [a, b]`".
fn example(key: &str) -> String {
    let text = KEYS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map_or("", |(_, _, e)| e);
    format!("`{}`", text.replace(" or ", "` or `"))
}

/// Parses the attribute's tokens into every argument that is right; each problem goes into
/// `errors`, not only the first.
pub(crate) fn parse(tokens: proc_macro2::TokenStream, which: Macro, errors: &mut Errors) -> Args {
    let mut args = Args::default();
    let metas = match syn::parse::Parser::parse2(
        Punctuated::<Meta, Token![,]>::parse_terminated,
        tokens.clone(),
    ) {
        Ok(metas) => metas,
        Err(e) => {
            errors.push(syntax_hint(&tokens, which).unwrap_or_else(|| {
                syn::Error::new(
                    e.span(),
                    format!(
                        "{e}: {} takes `key = value` arguments separated by commas, e.g. `#[{}(retries = 3, retry_delay = \"15s\")]`",
                        which.attr(),
                        which.noun()
                    ),
                )
            }));
            return args;
        }
    };

    let mut seen: Vec<String> = Vec::new();
    for meta in metas {
        let path = meta.path();
        let Some(key) = path.get_ident().cloned() else {
            errors.at(
                path,
                format!("unknown argument; expected one of: {}", known(which)),
            );
            continue;
        };
        let name = key.to_string();
        let Some(&(_, on_flow, _)) = KEYS.iter().find(|(k, _, _)| *k == name) else {
            errors.at(&key, unknown_key_message(&name, which));
            continue;
        };
        if which == Macro::Task && name == "flow_run_name" {
            errors.at(
                &key,
                "`flow_run_name` names flow runs; name this task's runs with `task_run_name = \"…\"`",
            );
            continue;
        }
        if which == Macro::Flow && !on_flow {
            errors.at(
                &key,
                format!(
                    "`{name}` is not supported on #[flow]: {}",
                    task_only_reason(&name)
                ),
            );
            continue;
        }
        if seen.contains(&name) {
            errors.at(&key, format!("`{name}` is given twice; keep one"));
            continue;
        }
        seen.push(name.clone());
        if name == "background" {
            match meta {
                Meta::Path(_) => args.background = Some(key),
                other => errors.at(
                    &other,
                    "`background` takes no value: write `#[task(background)]`",
                ),
            }
            continue;
        }
        let value = match meta {
            Meta::NameValue(nv) => nv.value,
            other => {
                errors.at(
                    &other,
                    format!("`{name}` needs a value: {}", example(&name)),
                );
                continue;
            }
        };
        if let Err(e) = args.set(key, &name, value) {
            errors.push(e);
        }
    }
    args
}

/// A clearer error for two common slips: `key: value`, and a bare string for the name.
fn syntax_hint(tokens: &proc_macro2::TokenStream, which: Macro) -> Option<syn::Error> {
    use proc_macro2::{Spacing, TokenTree};

    let trees: Vec<TokenTree> = tokens.clone().into_iter().collect();
    if let [TokenTree::Literal(lit), ..] = trees.as_slice()
        && lit.to_string().starts_with('"')
    {
        return Some(syn::Error::new(
            lit.span(),
            format!("to name the {}, write `name = {lit}`", which.noun()),
        ));
    }
    for (i, pair) in trees.windows(3).enumerate() {
        // A known key at the start of an argument, then a `:` that does not begin a path.
        let starts_argument =
            i == 0 || matches!(&trees[i - 1], TokenTree::Punct(p) if p.as_char() == ',');
        if let [TokenTree::Ident(key), TokenTree::Punct(colon), next] = pair
            && starts_argument
            && KEYS.iter().any(|(k, _, _)| key == k)
            && colon.as_char() == ':'
            && colon.spacing() == Spacing::Alone
        {
            let value = match next {
                TokenTree::Literal(_) | TokenTree::Ident(_) => next.to_string(),
                _ => "…".to_owned(),
            };
            return Some(syn::Error::new(
                colon.span(),
                format!("write `=` between a key and its value: `{key} = {value}`"),
            ));
        }
    }
    None
}

impl Args {
    fn set(&mut self, key: Ident, name: &str, value: Expr) -> syn::Result<()> {
        match name {
            "name" => {
                let lit = string(&value, name)?;
                if lit.value().trim().is_empty() {
                    return Err(syn::Error::new(
                        lit.span(),
                        "the name must not be empty; remove `name` to use the function's name",
                    ));
                }
                self.name = Some(lit);
            }
            "retries" => self.retries = Some(setting(key, count(&value, name)?)),
            "retry_delay" => self.retry_delay = Some(setting(key, delays(&value)?)),
            "retry_backoff" => {
                let backoff = float(&value, name)?;
                if backoff <= 0.0 {
                    return Err(syn::Error::new_spanned(
                        &value,
                        "`retry_backoff` must be greater than 0: 2.0 doubles the delay after each retry, 1.0 keeps it",
                    ));
                }
                self.retry_backoff = Some(setting(key, backoff));
            }
            "retry_jitter" => {
                let jitter = float(&value, name)?;
                if !(0.0..=1.0).contains(&jitter) {
                    return Err(syn::Error::new_spanned(
                        &value,
                        "`retry_jitter` must be between 0 and 1: 0.2 moves each delay randomly by up to ±20 %",
                    ));
                }
                self.retry_jitter = Some(setting(key, jitter));
            }
            "retry_if" => self.retry_if = Some(setting(key, function(value, name)?)),
            "timeout" => self.timeout = Some(setting(key, duration_value(&value, name)?)),
            "cache_for" => self.cache_for = Some(setting(key, duration_value(&value, name)?)),
            "cache_key" => self.cache_key = Some(setting(key, function(value, name)?)),
            "refresh_cache" => self.refresh_cache = Some(setting(key, boolean(&value, name)?)),
            "tags" => self.tags = tags(&value)?,
            "task_run_name" | "flow_run_name" => {
                self.run_name = Some(setting(key, run_name(value, name)?));
            }
            "on_state" => self.on_state = functions(value, name)?,
            "on_failure" => self.on_failure = functions(value, name)?,
            "on_completion" => self.on_completion = functions(value, name)?,
            "on_cancellation" => self.on_cancellation = functions(value, name)?,
            "on_crashed" => self.on_crashed = functions(value, name)?,
            "crate" => self.krate = Some(crate_path(&value)?),
            _ => unreachable!("every key in KEYS is handled"),
        }
        Ok(())
    }
}

fn setting<T>(key: Ident, value: T) -> Setting<T> {
    Setting { key, value }
}

/// Whether the attribute takes `key`: `#[flow]` those marked for it, `#[task]` all but
/// `flow_run_name`.
fn accepts(which: Macro, key: &str, on_flow: bool) -> bool {
    match which {
        Macro::Task => key != "flow_run_name",
        Macro::Flow => on_flow,
    }
}

fn known(which: Macro) -> String {
    KEYS.iter()
        .filter(|(k, on_flow, _)| accepts(which, k, *on_flow))
        .map(|(k, _, _)| *k)
        .collect::<Vec<_>>()
        .join(", ")
}

fn unknown_key_message(name: &str, which: Macro) -> String {
    let nearest = KEYS
        .iter()
        .filter(|(k, on_flow, _)| accepts(which, k, *on_flow))
        .map(|(k, _, _)| (strsim::damerau_levenshtein(name, k), *k))
        .min();
    match nearest {
        Some((distance, key)) if distance <= 3 => {
            format!(
                "unknown argument `{name}` for {}; did you mean `{key}`?",
                which.attr()
            )
        }
        _ => format!(
            "unknown argument `{name}` for {}; expected one of: {}",
            which.attr(),
            known(which)
        ),
    }
}

fn task_only_reason(name: &str) -> &'static str {
    match name {
        "task_run_name" => "it names task runs; name this flow's runs with `flow_run_name = \"…\"`",
        "background" => {
            "only tasks run on workers; serve the flow as a deployment (`flowcore::serve`) to run it on any of them"
        }
        _ => "only tasks cache their results; put `cache_for` on the flow's tasks",
    }
}

fn lit(value: &Expr) -> Option<&Lit> {
    match value {
        Expr::Lit(ExprLit { lit, .. }) => Some(lit),
        Expr::Group(group) => lit(&group.expr),
        _ => None,
    }
}

/// `-1` or `-0.5`: syn reads a minus sign before a literal into the literal itself (its span is
/// then the minus sign's), but `-(1)` is a unary expression.
fn is_negative_number(value: &Expr) -> bool {
    match lit(value) {
        Some(Lit::Int(int)) => int.base10_digits().starts_with('-'),
        Some(Lit::Float(float)) => float.base10_digits().starts_with('-'),
        _ => matches!(value, Expr::Unary(ExprUnary { op: UnOp::Neg(_), expr, .. })
            if matches!(lit(expr), Some(Lit::Int(_) | Lit::Float(_)))),
    }
}

fn string(value: &Expr, key: &str) -> syn::Result<LitStr> {
    match lit(value) {
        Some(Lit::Str(s)) => Ok(s.clone()),
        _ => Err(syn::Error::new_spanned(
            value,
            format!("expected a string: {}", example(key)),
        )),
    }
}

fn count(value: &Expr, key: &str) -> syn::Result<u32> {
    if is_negative_number(value) {
        return Err(syn::Error::new_spanned(
            value,
            format!(
                "`{key}` cannot be negative: it counts the attempts after the first, e.g. {}",
                example(key)
            ),
        ));
    }
    match lit(value) {
        Some(Lit::Int(int)) => int.base10_parse::<u32>().map_err(|_| {
            syn::Error::new_spanned(
                value,
                format!("`{key}` is too large: the most is {}", u32::MAX),
            )
        }),
        _ => Err(syn::Error::new_spanned(
            value,
            format!("expected a whole number: {}", example(key)),
        )),
    }
}

fn float(value: &Expr, key: &str) -> syn::Result<f64> {
    let (negative, inner) = match value {
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr,
            ..
        }) => (true, &**expr),
        other => (false, other),
    };
    let parsed = match lit(inner) {
        Some(Lit::Float(f)) => f.base10_parse::<f64>(),
        Some(Lit::Int(i)) => i.base10_parse::<f64>(),
        _ => {
            return Err(syn::Error::new_spanned(
                value,
                format!("expected a number: {}", example(key)),
            ));
        }
    }?;
    Ok(if negative { -parsed } else { parsed })
}

fn boolean(value: &Expr, key: &str) -> syn::Result<bool> {
    match lit(value) {
        Some(Lit::Bool(b)) => Ok(b.value),
        _ => Err(syn::Error::new_spanned(
            value,
            format!("expected `true` or `false`: {}", example(key)),
        )),
    }
}

fn duration_value(value: &Expr, key: &str) -> syn::Result<Duration> {
    match lit(value) {
        Some(Lit::Str(s)) => {
            let d = duration::parse(s)?;
            if d.is_zero() {
                return Err(syn::Error::new(
                    s.span(),
                    format!("`{key}` must be longer than zero"),
                ));
            }
            Ok(d)
        }
        Some(Lit::Int(int)) => {
            let n = int.base10_digits();
            Err(syn::Error::new_spanned(
                value,
                format!(
                    "a duration is a string with a unit: `{key} = \"{n}s\"` (or \"{n}ms\", \"{n}m\", \"{n}h\")"
                ),
            ))
        }
        Some(Lit::Float(_)) => Err(syn::Error::new_spanned(
            value,
            format!(
                "a duration is a string with a unit: {}; write fractions in a smaller unit (\"1500ms\")",
                example(key)
            ),
        )),
        _ => Err(syn::Error::new_spanned(
            value,
            format!("expected a duration string: {}", example(key)),
        )),
    }
}

fn delays(value: &Expr) -> syn::Result<Delays> {
    let one = |e: &Expr| match lit(e) {
        Some(Lit::Str(s)) => duration::parse(s),
        _ => Err(syn::Error::new_spanned(
            e,
            format!("expected a duration string: {}", example("retry_delay")),
        )),
    };
    match value {
        Expr::Array(array) => {
            if array.elems.is_empty() {
                return Err(syn::Error::new_spanned(
                    value,
                    "the list of retry delays is empty; give at least one, e.g. `[\"1s\", \"10s\"]`",
                ));
            }
            let mut errors = Errors::default();
            let mut durations = Vec::new();
            for e in &array.elems {
                match one(e) {
                    Ok(d) => durations.push(d),
                    Err(err) => errors.push(err),
                }
            }
            errors.finish(Delays {
                durations,
                is_list: true,
            })
        }
        other => Ok(Delays {
            durations: vec![one(other)?],
            is_list: false,
        }),
    }
}

fn tags(value: &Expr) -> syn::Result<Vec<LitStr>> {
    let elems: Vec<&Expr> = match value {
        Expr::Array(array) => array.elems.iter().collect(),
        single => vec![single],
    };
    let mut errors = Errors::default();
    let mut tags = Vec::new();
    for e in elems {
        match lit(e) {
            Some(Lit::Str(s)) if !s.value().trim().is_empty() => tags.push(s.clone()),
            Some(Lit::Str(s)) => errors.at(s, "a tag must not be empty"),
            _ => errors.at(e, format!("expected a string tag: {}", example("tags"))),
        }
    }
    errors.finish(tags)
}

/// A run name: a template string, or a function given by path or as a closure.
fn run_name(value: Expr, key: &str) -> syn::Result<RunName> {
    match lit(&value) {
        Some(Lit::Str(s)) => Ok(RunName::Template(s.clone())),
        Some(_) => Err(syn::Error::new_spanned(
            &value,
            format!("expected a template string or a function: {}", example(key)),
        )),
        None => Ok(RunName::Function(function(value, key)?)),
    }
}

/// A function given by path or as a closure.
fn function(value: Expr, key: &str) -> syn::Result<Expr> {
    match value {
        Expr::Path(_) | Expr::Closure(_) => Ok(value),
        Expr::Group(group) => function(*group.expr, key),
        other => Err(syn::Error::new_spanned(
            &other,
            format!("expected a function path or a closure: {}", example(key)),
        )),
    }
}

/// `crate = "my_reexport::flowcore"`: a string holding a module path, like serde's
/// `#[serde(crate = "…")]` and tokio's `#[tokio::main(crate = "…")]`. The path's tokens carry
/// the string's span, so a path that does not resolve is reported at the string.
fn crate_path(value: &Expr) -> syn::Result<Path> {
    let lit = string(value, "crate")?;
    lit.parse_with(Path::parse_mod_style).map_err(|_| {
        syn::Error::new(
            lit.span(),
            format!(
                "{:?} is not a path: `crate` names the path flowcore is re-exported under, e.g. {}",
                lit.value(),
                example("crate")
            ),
        )
    })
}

fn functions(value: Expr, key: &str) -> syn::Result<Vec<Expr>> {
    match value {
        Expr::Array(array) => {
            let mut errors = Errors::default();
            let mut out = Vec::new();
            for e in array.elems {
                match function(e, key) {
                    Ok(f) => out.push(f),
                    Err(err) => errors.push(err),
                }
            }
            errors.finish(out)
        }
        single => Ok(vec![function(single, key)?]),
    }
}
