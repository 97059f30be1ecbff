use flowcore::task;

#[task(retry_delay = "10s")]
async fn fetch(url: String) -> Result<String, std::io::Error> {
    Ok(url)
}

fn main() {}
