use flowcore::{flow, task};

#[task(colour = "red")]
async fn paint(wall: u32) -> Result<u32, String> {
    Ok(wall)
}

#[flow]
async fn decorate() -> Result<u32, String> {
    let first = paint(1).await?;
    let (second, run) = paint(first).with_run().await;
    assert!(run.state().is_completed());
    second
}

fn main() {}
