//! Where the connections' I/O runs: a current-thread tokio runtime on a thread of its own,
//! shared by the process's PostgreSQL stores.
//!
//! The store's calls are blocking (the writer thread, tokio's blocking pool, and a user's own
//! reads, which may come from inside an async fn). A client whose I/O ran on the calling
//! thread's runtime, as the `postgres` crate's does, panics when called from inside another
//! runtime ("Cannot start a runtime from within a runtime"); here a call only waits on a
//! channel to this thread, which works from any thread, a tokio worker included.

use std::sync::OnceLock;

use tokio::runtime::Handle;
use tokio_postgres::{Client, Config, NoTls};

/// Runs `future` (a query on a [`Client`], whose I/O is this module's thread's) to its end on
/// the calling thread.
pub(crate) fn wait<F: Future>(future: F) -> F::Output {
    futures_executor::block_on(future)
}

/// Connects with `config`; the connection is then driven by the I/O thread until it closes.
/// The outer error is the I/O thread's, which could not be started.
pub(crate) fn connect(config: &Config) -> Result<Result<Client, tokio_postgres::Error>, String> {
    let config = config.clone();
    let (sent, received) = std::sync::mpsc::sync_channel(1);
    runtime()?.spawn(async move {
        match config.connect(NoTls).await {
            Ok((client, connection)) => {
                if sent.send(Ok(client)).is_ok() {
                    // Ends when the client is dropped or the server goes away; the client
                    // then reports itself closed, and the store makes a new one.
                    let _ = connection.await;
                }
            }
            Err(e) => {
                let _ = sent.send(Err(e));
            }
        }
    });
    received
        .recv()
        .map_err(|_| "the PostgreSQL I/O thread stopped".to_owned())
}

fn runtime() -> Result<&'static Handle, String> {
    static IO: OnceLock<Result<Handle, String>> = OnceLock::new();
    IO.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("could not start the PostgreSQL I/O runtime: {e}"))?;
        let handle = rt.handle().clone();
        std::thread::Builder::new()
            .name("flowcore-postgres".to_owned())
            .spawn(move || rt.block_on(std::future::pending::<()>()))
            .map_err(|e| format!("could not start the PostgreSQL I/O thread: {e}"))?;
        Ok(handle)
    })
    .as_ref()
    .map_err(Clone::clone)
}
