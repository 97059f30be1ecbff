use flowcore::task;

#[task(timeout = 30)]
async fn fetch(url: String) -> anyhow::Result<String> {
    Ok(url)
}

fn main() {}
