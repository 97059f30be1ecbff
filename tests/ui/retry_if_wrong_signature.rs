use flowcore::task;

fn is_transient(code: &u32) -> bool {
    *code >= 500
}

#[task(retries = 3, retry_if = is_transient)]
async fn fetch(url: String) -> Result<String, std::io::Error> {
    Ok(url)
}

fn main() {}
