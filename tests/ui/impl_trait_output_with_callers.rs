use flowcore::{flow, task};

#[task]
async fn show(n: u32) -> impl std::fmt::Display {
    n
}

#[flow]
async fn shows() -> String {
    let (shown, _run) = show(1).with_run().await;
    format!("{shown} {}", show(2).await)
}

fn main() {}
