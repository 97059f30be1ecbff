use flowcore::{flow, task};

#[task(retries = 2)]
async fn parse(text: String) -> Result<u32, String> {
    let trimmed = text.trim() +;
    trimmed.parse().map_err(|_| "not a number".to_owned())
}

#[flow]
async fn total(lines: Vec<String>) -> Result<u32, String> {
    let mut sum = 0;
    for line in lines {
        sum += parse(line).await?;
    }
    Ok(sum)
}

fn main() {
    let _ = total(vec![]).with_run();
}
