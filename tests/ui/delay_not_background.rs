use flowcore::task;

#[task]
async fn square(n: u64) -> u64 {
    n * n
}

#[tokio::main]
async fn main() {
    let _ = square(3).delay().await;
    let _ = flowcore::background(square);
}
