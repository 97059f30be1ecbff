use flowcore::task;

#[task(retries = 99999999999)]
async fn fetch(url: String) -> Result<String, std::io::Error> {
    Ok(url)
}

fn main() {}
