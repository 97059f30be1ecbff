use std::fmt::Display;

use flowcore::{TimeoutError, task};

#[task(retries = 2, cache_for = "1h")]
async fn patterns(mut count: u32, (a, b): (u32, u32), _: String) -> Result<u32, String> {
    count += a + b;
    Ok(count)
}

#[task(retries = 1, timeout = "1s", retry_if = |_| true)]
async fn generic_error<E: Display + From<TimeoutError>>(x: u32) -> Result<u32, E> {
    Ok(x)
}

#[task(cache_for = "1h", retries = 1)]
async fn no_args() -> Result<u32, String> {
    Ok(1)
}

fn key(id: &u32, _label: &String) -> String {
    id.to_string()
}

#[task(cache_for = "1h", cache_key = key)]
async fn keyed_by_path(id: u32, label: String) -> usize {
    id as usize + label.len()
}

#[task(cache_for = "1h", cache_key = |id: &u32, _: &String| id.to_string())]
async fn keyed_by_closure(id: u32, label: String) -> usize {
    id as usize + label.len()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(patterns(1, (2, 3), "x".into()).await, Ok(6));
    assert_eq!(generic_error::<anyhow::Error>(3).await.unwrap(), 3);
    assert_eq!(no_args().await.unwrap(), 1);
    assert_eq!(keyed_by_path(1, "ab".into()).await, 3);
    // Same key, so the cached result of the first call comes back.
    assert_eq!(keyed_by_path(1, "abcdef".into()).await, 3);
    assert_eq!(keyed_by_closure(2, "ab".into()).await, 4);
}
