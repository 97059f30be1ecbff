use flowcore::{flow, task};

#[derive(Debug)]
struct LoadError;

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("load failed")
    }
}

#[task]
async fn create_table() -> Result<(), String> {
    Ok(())
}

#[task]
async fn load(rows: Vec<String>) -> Result<usize, LoadError> {
    Ok(rows.len())
}

#[flow]
async fn etl() -> Result<usize, LoadError> {
    let table = create_table().submit();
    load(vec![]).wait_for(&table).await
}

fn main() {}
