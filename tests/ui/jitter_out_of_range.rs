use flowcore::task;

#[task(retries = 3, retry_delay = "1s", retry_jitter = 1.5)]
async fn fetch(url: String) -> Result<String, std::io::Error> {
    Ok(url)
}

fn main() {}
