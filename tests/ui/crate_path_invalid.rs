use flowcore::task;

#[task(crate = "my reexport::flowcore")]
async fn fetch(url: String) -> String {
    url
}

fn main() {
    let _ = fetch("x".into()).with_run();
}
