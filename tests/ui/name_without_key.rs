use flowcore::task;

#[task("fetch-users")]
async fn fetch(url: String) -> Result<String, std::io::Error> {
    Ok(url)
}

fn main() {}
