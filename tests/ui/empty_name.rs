use flowcore::task;

#[task(name = "")]
async fn fetch(url: String) -> String {
    url
}

fn main() {}
