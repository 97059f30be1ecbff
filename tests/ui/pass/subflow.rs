use flowcore::{flow, task};

#[task]
async fn double(n: u32) -> u32 {
    n * 2
}

#[flow(name = "inner")]
async fn inner(n: u32) -> u32 {
    double(n).await
}

#[flow(name = "outer", retries = 1)]
async fn outer(start: u32) -> Result<u32, String> {
    let a = inner(start).await;
    let b = inner(a).await;
    Ok(b)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (out, run) = outer(1).with_run().await;
    assert_eq!(out, Ok(4));
    assert!(run.state().is_completed());
}
