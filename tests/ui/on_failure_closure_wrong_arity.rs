use flowcore::task;

#[task(on_failure = |run| println!("{} failed", run.name()))]
async fn fetch(url: String) -> Result<String, std::io::Error> {
    Ok(url)
}

fn main() {}
