//! Which store a run records to: the process's, or one put in scope for a future (a test's own
//! store, an embedded runtime's), as tracing has `set_global_default` and `with_default`.
//!
//! A run takes its store when it starts: a flow run from the scope it was called in (or its
//! parent flow run's), a task run from its flow run (or, outside any flow, from the scope). So
//! a flow's task runs all go to one store, those submitted to other threads included.

use std::future::Future;
use std::ops::Deref;

use futures_util::future::Either;
use tokio::task::futures::TaskLocalFuture;

use crate::store::Store;

tokio::task_local! {
    static SCOPED: Store;
}

/// The store a run records to: the process's (a plain reference: nothing to count on the
/// task-call path) or a scope's.
#[derive(Clone)]
pub(crate) enum RunStore {
    Process(&'static Store),
    Scoped(Store),
}

impl RunStore {
    /// The store in scope, else the process's (opened on first use).
    pub(crate) fn current() -> RunStore {
        SCOPED
            .try_with(|store| RunStore::Scoped(store.clone()))
            .unwrap_or_else(|_| RunStore::Process(Store::process()))
    }

    /// The store in scope, else the process's if it has one yet: for log lines, which must not
    /// open a store of their own.
    pub(crate) fn current_if_open() -> Option<RunStore> {
        SCOPED
            .try_with(|store| RunStore::Scoped(store.clone()))
            .ok()
            .or_else(|| Store::process_if_open().map(RunStore::Process))
    }

    /// `fut`, with this store in scope if it is a scope's: for a future spawned onto another
    /// tokio task, which task-locals do not follow.
    pub(crate) fn keep_in<F: Future>(&self, fut: F) -> Either<TaskLocalFuture<Store, F>, F> {
        match self {
            RunStore::Process(_) => Either::Right(fut),
            RunStore::Scoped(store) => Either::Left(SCOPED.scope(store.clone(), fut)),
        }
    }
}

impl std::fmt::Debug for RunStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

impl Deref for RunStore {
    type Target = Store;

    fn deref(&self) -> &Store {
        match self {
            RunStore::Process(store) => store,
            RunStore::Scoped(store) => store,
        }
    }
}

impl Store {
    /// Runs `fut` with this store as the store of every run it starts, whatever the process's
    /// store is: a test's own store, or an embedded runtime's. Runs started inside keep it for
    /// their task runs and subflow runs, on whatever thread they run.
    ///
    /// [`Store::install`] sets the process's store, for `main`; this overrides it for one
    /// future, as tracing's `with_default` overrides its global default. Scopes nest: the
    /// innermost wins.
    ///
    /// ```
    /// use flowcore::{flow, task, Store, StateKind};
    ///
    /// #[task]
    /// async fn double(x: u32) -> u32 {
    ///     x * 2
    /// }
    ///
    /// #[flow]
    /// async fn doubling() -> u32 {
    ///     double(21).await
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mine = Store::memory();
    /// let (out, run) = mine.scope(doubling().with_run()).await;
    /// assert_eq!(out, 42);
    /// let listed = mine.flow_runs(&Default::default()).unwrap();
    /// assert_eq!(listed.len(), 1);
    /// assert_eq!(listed[0].id, run.id);
    /// assert_eq!(listed[0].state, StateKind::Completed);
    /// # }
    /// ```
    pub fn scope<F: Future>(&self, fut: F) -> impl Future<Output = F::Output> {
        SCOPED.scope(self.clone(), fut)
    }
}
