use flowcore::task;

#[task(background)]
async fn fetch(url: &str, retries: u32) -> String {
    format!("{url} {retries}")
}

fn main() {}
