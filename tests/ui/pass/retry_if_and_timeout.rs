use std::error::Error;
use std::io;

use flowcore::task;

fn is_transient(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::TimedOut
}

#[task(retries = 2, retry_if = is_transient)]
async fn read_io(path: String) -> io::Result<usize> {
    Ok(path.len())
}

#[task(retries = 1, retry_if = |e: &io::Error| e.kind() == io::ErrorKind::Interrupted)]
async fn read_closure(path: String) -> Result<usize, io::Error> {
    Ok(path.len())
}

#[task(timeout = "5s", retries = 1, retry_if = |e| e.to_string().contains("timed out"))]
async fn fetch_anyhow(url: String) -> anyhow::Result<String> {
    Ok(url)
}

#[task(timeout = "250ms")]
async fn fetch_boxed(url: String) -> Result<String, Box<dyn Error + Send + Sync>> {
    Ok(url)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(read_io("abc".into()).await.unwrap(), 3);
    assert_eq!(read_closure("ab".into()).await.unwrap(), 2);
    assert_eq!(fetch_anyhow("u".into()).await.unwrap(), "u");
    assert_eq!(fetch_boxed("v".into()).await.unwrap(), "v");
}
