//! Where a store is, as users write it (a SQLite file's path, or a PostgreSQL URL) and as
//! flowcore prints it: never with a password.

/// Whether `target` names a PostgreSQL database rather than a SQLite file.
pub(crate) fn is_postgres(target: &str) -> bool {
    target.starts_with("postgres://") || target.starts_with("postgresql://")
}

/// `url` without its password, wherever it was written (`user:secret@`, `?password=secret`),
/// for messages, logs and `flowcore store path`.
pub(crate) fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (authority_and_path, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match authority_and_path.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (authority_and_path, None),
    };
    // The last `@` ends the user info: a password may hold `@`s of its own.
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info
                .split_once(':')
                .map_or(user_info, |(user, _)| user);
            format!("{user}@{host}")
        }
        None => authority.to_owned(),
    };
    let mut out = format!("{scheme}://{authority}");
    if let Some(path) = path {
        out.push('/');
        out.push_str(path);
    }
    if let Some(query) = query {
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| !pair.to_ascii_lowercase().starts_with("password="))
            .collect();
        if !kept.is_empty() {
            out.push('?');
            out.push_str(&kept.join("&"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("postgres://flow:s3cr@t@db.internal:5432/runs"),
            "postgres://flow@db.internal:5432/runs"
        );
        assert_eq!(
            redact("postgresql://flow@db/runs?password=hunter2&sslmode=disable"),
            "postgresql://flow@db/runs?sslmode=disable"
        );
        assert_eq!(
            redact("postgres:///runs?host=/run/postgresql"),
            "postgres:///runs?host=/run/postgresql"
        );
        assert_eq!(
            redact("postgres://db/runs?PASSWORD=x"),
            "postgres://db/runs"
        );
        assert!(is_postgres("postgresql://db/runs"));
        assert!(!is_postgres("/home/me/.flowcore/flowcore.db"));
    }
}
