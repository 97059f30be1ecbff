use flowcore::task;

fn is_transient(_: &std::io::Error) -> bool {
    true
}

#[task(retries = 3, retry_if = is_transient)]
async fn fetch(url: String) -> String {
    url
}

fn main() {}
