use std::fmt::Debug;

use flowcore::task;

#[task(retries = 2, retry_delay = "10ms")]
async fn describe<T: Clone + Send + Debug>(value: T) -> Result<String, String> {
    Ok(format!("{value:?}"))
}

#[task(retries = 1)]
async fn first<T>(items: Vec<T>) -> Result<T, String>
where
    T: Clone + Send,
{
    items.into_iter().next().ok_or_else(|| "no items".to_owned())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(describe(vec![1, 2]).await.unwrap(), "[1, 2]");
    assert_eq!(describe::<&str>("x").await.unwrap(), "\"x\"");
    assert_eq!(first(vec!['a', 'b']).await, Ok('a'));
}
