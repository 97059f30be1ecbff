use flowcore::task;

#[derive(Debug)]
enum FetchError {
    NotFound,
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not found")
    }
}

#[task(timeout = "30s")]
async fn fetch(url: String) -> Result<String, FetchError> {
    if url.is_empty() {
        return Err(FetchError::NotFound);
    }
    Ok(url)
}

fn main() {}
