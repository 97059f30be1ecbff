use flowcore::task;

#[task(retries = 3, retry_delay = ["1s", "10s", "1m"], retry_backoff = 2.0)]
async fn fetch(url: String) -> Result<String, std::io::Error> {
    Ok(url)
}

fn main() {}
