use flowcore::task;

#[task(colour = "red", retries = 3, retry_delay = "15 parsecs", timeout = 30)]
async fn fetch(url: String) -> Result<String, std::io::Error> {
    Ok(url)
}

fn main() {}
