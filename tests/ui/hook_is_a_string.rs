use flowcore::task;

#[task(on_failure = "notify")]
async fn fetch(url: String) -> Result<String, std::io::Error> {
    Ok(url)
}

fn main() {}
