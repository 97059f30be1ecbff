use flowcore::task;

#[task(retries = 3, retry_delay = "15 parsecs")]
async fn fetch(url: String) -> Result<String, std::io::Error> {
    Ok(url)
}

fn main() {}
