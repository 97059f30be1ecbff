//! `task_run_name = "fetch-{url}"` and `flow_run_name = …`: Prefect's run name templates,
//! checked here against the function's arguments, where Prefect finds a bad placeholder only
//! when the run starts.

use proc_macro2::Span;
use syn::LitStr;

use crate::errors::Errors;

/// A run name: a template over the arguments, or a function given references to them.
pub(crate) enum RunName {
    Template(LitStr),
    Function(syn::Expr),
}

/// A `{…}` of a template: the argument it names and where it sits in the string.
#[derive(Debug, PartialEq)]
pub(crate) struct Placeholder {
    pub name: String,
    /// Byte offsets of the whole `{…}` in the template's value.
    pub range: std::ops::Range<usize>,
}

/// The placeholders of a template, in order, or what is wrong with it. `{{` and `}}` are
/// literal braces; `{name:spec}` takes a format spec, as `format!` does.
pub(crate) fn placeholders(template: &str) -> Result<Vec<Placeholder>, String> {
    let mut out = Vec::new();
    let mut chars = template.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        match c {
            '{' if chars.peek().is_some_and(|&(_, n)| n == '{') => {
                chars.next();
            }
            '}' if chars.peek().is_some_and(|&(_, n)| n == '}') => {
                chars.next();
            }
            '}' => {
                return Err("a `}` without its `{`: write `}}` for a brace in the name".to_owned());
            }
            '{' => {
                let Some(end) = template[start..].find('}').map(|i| start + i) else {
                    return Err(
                        "a `{` that is never closed: write `{{` for a brace in the name".to_owned(),
                    );
                };
                let inner = &template[start + 1..end];
                let name = inner.split(':').next().unwrap_or_default().trim();
                if !is_identifier(name) {
                    return Err(format!(
                        "`{{{inner}}}` names no argument: a placeholder is an argument's name, as in `{{url}}`"
                    ));
                }
                out.push(Placeholder {
                    name: name.to_owned(),
                    range: start..end + 1,
                });
                while chars.peek().is_some_and(|&(i, _)| i <= end) {
                    chars.next();
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

/// Checks every placeholder of `template` against the arguments; each one that names none is
/// an error at the placeholder (at the whole string where the compiler cannot point inside
/// it).
pub(crate) fn check(
    template: &LitStr,
    key: &str,
    function: &str,
    arguments: &[String],
    errors: &mut Errors,
) {
    let value = template.value();
    if value.trim().is_empty() {
        errors.at(
            template,
            format!("`{key}` must not be empty; remove it to keep the default names"),
        );
        return;
    }
    let found = match placeholders(&value) {
        Ok(found) => found,
        Err(problem) => {
            errors.at(template, format!("in `{key}`: {problem}"));
            return;
        }
    };
    for placeholder in found {
        if arguments.contains(&placeholder.name) {
            continue;
        }
        let known = if arguments.is_empty() {
            format!("`{function}` takes no arguments")
        } else {
            format!(
                "the arguments of `{function}` are: {}",
                arguments
                    .iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        errors.push(syn::Error::new(
            span_of(template, &value, &placeholder.range),
            format!(
                "`{{{}}}` in `{key}` names no argument; {known}",
                placeholder.name
            ),
        ));
    }
}

/// The placeholder's own span where the compiler gives one (a plain string literal on a
/// compiler that can point inside literals), else the whole literal's.
fn span_of(template: &LitStr, value: &str, range: &std::ops::Range<usize>) -> Span {
    let token = template.token();
    let source = token.to_string();
    // Only a plain `"…"` literal maps value offsets to source offsets one for one.
    if source.len() == value.len() + 2 && source[1..source.len() - 1] == *value {
        let start = range.start + 1;
        if let Some(span) = token.subspan(start..range.end + 1) {
            return span;
        }
    }
    template.span()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(template: &str) -> Result<Vec<String>, String> {
        placeholders(template).map(|p| p.into_iter().map(|p| p.name).collect())
    }

    #[test]
    fn placeholders_are_the_names_in_braces() {
        assert_eq!(names("fetch-{url}").unwrap(), ["url"]);
        assert_eq!(names("{a}-{b:>4}").unwrap(), ["a", "b"]);
        assert_eq!(names("{{literal}} {x}").unwrap(), ["x"]);
        assert_eq!(names("データ-{名前}").unwrap(), ["名前"]);
        assert!(names("plain").unwrap().is_empty());
    }

    #[test]
    fn bad_templates_say_what_is_wrong() {
        assert!(names("{}").unwrap_err().contains("names no argument"));
        assert!(names("{0}").unwrap_err().contains("names no argument"));
        assert!(names("fetch-{url").unwrap_err().contains("never closed"));
        assert!(names("fetch}").unwrap_err().contains("without its `{`"));
    }

    #[test]
    fn ranges_cover_the_braces() {
        let found = placeholders("ab{cd}").unwrap();
        assert_eq!(found[0].range, 2..6);
    }
}
