use flowcore::{flow, task};

#[task(retrys = 3)]
async fn fetch(url: String) -> Result<String, std::io::Error> {
    Ok(url)
}

#[flow(retries = 2)]
async fn crawl(urls: Vec<String>) -> Result<usize, std::io::Error> {
    let mut total = 0;
    for url in urls {
        total += fetch(url).await?.len();
    }
    let handle = fetch("https://example.com".into()).submit();
    total += handle.await?.len();
    Ok(total)
}

fn main() {
    let _ = crawl(vec![]).with_run();
}
