use flowcore::task;

#[task(tags = ["db", http])]
async fn fetch(url: String) -> String {
    url
}

fn main() {}
