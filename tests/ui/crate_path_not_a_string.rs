use flowcore::task;

#[task(crate = flowcore)]
async fn fetch(url: String) -> String {
    url
}

fn main() {}
