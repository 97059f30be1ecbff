use flowcore::{flow, task};

#[task]
async fn create_table() -> Result<(), String> {
    Ok(())
}

// A skipped run has no output to return: `wait_for` needs a `Result` output.
#[task]
async fn load(rows: Vec<String>) -> usize {
    rows.len()
}

#[flow]
async fn etl() -> usize {
    let table = create_table().submit();
    load(vec![]).wait_for(&table).await
}

fn main() {}
