// `crate = "…"`: the generated code names flowcore through another path, for crates that
// re-export it.

mod rt {
    pub use ::flowcore as engine;
}

use rt::engine::{flow, task};

#[task(crate = "crate::rt::engine", retries = 1, cache_for = "1h")]
async fn double(n: u64) -> Result<u64, String> {
    Ok(n * 2)
}

#[flow(crate = "crate::rt::engine")]
async fn doubled(n: u64) -> u64 {
    double(n).await.unwrap()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    rt::engine::Store::memory().install().unwrap();
    let (out, run) = doubled(21).with_run().await;
    assert_eq!(out, 42);
    assert!(run.state().is_completed());
}
