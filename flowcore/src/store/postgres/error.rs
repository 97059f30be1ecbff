//! PostgreSQL's errors as the store's: what the user can act on, naming the database by its
//! URL without the password.

use std::path::PathBuf;

use tokio_postgres::error::SqlState;

use crate::store::StoreError;

/// Turns PostgreSQL's errors into the store's, for one database.
#[derive(Clone, Debug)]
pub(crate) struct Errors {
    /// The database's URL, without its password.
    store: String,
}

impl Errors {
    pub(crate) fn new(store: String) -> Self {
        Errors { store }
    }

    pub(crate) fn store(&self) -> &str {
        &self.store
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(&self.store)
    }

    /// The store's error for `e`. A lost connection or a server that is away is
    /// [`StoreError::Unreachable`], which the writer waits out (its write timeout); a conflict
    /// between two transactions (a deadlock, a serialization failure) is
    /// [`StoreError::Busy`], which is tried again.
    pub(crate) fn map(&self, e: tokio_postgres::Error) -> StoreError {
        let Some(db) = e.as_db_error() else {
            // tokio-postgres's own words are the kind of error ("error connecting to server");
            // the reason ("Connection refused") is its source.
            let detail = with_sources(&e);
            if detail.contains("password missing") {
                return StoreError::Open {
                    path: self.path(),
                    detail: "the server asks for a password and the URL gives none: write it as postgres://USER:PASSWORD@HOST/DATABASE".to_owned(),
                };
            }
            return StoreError::Unreachable {
                store: self.store.clone(),
                detail,
            };
        };
        let detail = db.message().to_owned();
        let code = db.code();
        if *code == SqlState::INVALID_TEXT_REPRESENTATION
            && let Some(at) = fenced_at(&detail)
        {
            return StoreError::Fenced {
                store: self.store.clone(),
                at,
            };
        }
        if *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::LOCK_NOT_AVAILABLE
        {
            StoreError::Busy { path: self.path() }
        } else if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            StoreError::Open {
                path: self.path(),
                detail: format!("the server refused the login: {detail}"),
            }
        } else if *code == SqlState::INVALID_CATALOG_NAME {
            StoreError::Open {
                path: self.path(),
                detail: format!("{detail}; create it first (createdb)"),
            }
        } else if *code == SqlState::DISK_FULL {
            StoreError::Full { path: self.path() }
        } else if *code == SqlState::READ_ONLY_SQL_TRANSACTION {
            StoreError::ReadOnly { path: self.path() }
        } else if *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW
            || *code == SqlState::TOO_MANY_CONNECTIONS
        {
            StoreError::Unreachable {
                store: self.store.clone(),
                detail,
            }
        } else {
            StoreError::Database {
                path: self.path(),
                detail,
            }
        }
    }
}

/// `e`'s words followed by its sources', each once.
fn with_sources(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let words = cause.to_string();
        if !text.contains(&words) {
            text.push_str(": ");
            text.push_str(&words);
        }
        source = cause.source();
    }
    text
}

/// When this process was taken for dead, from the error of the fencing check (see
/// `sql::crash::check_not_fenced`): `invalid input syntax for type bigint:
/// "flowcore-fenced-at:1733526000000000"`.
fn fenced_at(message: &str) -> Option<String> {
    let (_, after) = message.split_once(crate::store::sql::crash::FENCED_AT)?;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    let micros: i64 = digits.parse().ok()?;
    Some(
        crate::clock::Timestamp::from_micros(micros)
            .to_datetime()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

#[cfg(test)]
mod tests {
    use super::fenced_at;

    #[test]
    fn the_fencing_checks_error_gives_the_time_the_process_was_taken_for_dead() {
        assert_eq!(
            fenced_at(
                r#"invalid input syntax for type bigint: "flowcore-fenced-at:1765065600000000""#
            )
            .as_deref(),
            Some("2025-12-07T00:00:00Z")
        );
        assert_eq!(
            fenced_at(r#"invalid input syntax for type bigint: "12x""#),
            None,
            "another statement's error is left as it is"
        );
    }
}
