use flowcore::{flow, task};

#[task]
fn add(a: u32, b: u32) -> u32 {
    a + b
}

#[flow]
async fn sums() -> u32 {
    let first = add(1, 2).await;
    let second = add(first, 3).await;
    second
}

fn main() {}
