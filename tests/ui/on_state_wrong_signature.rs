use flowcore::task;

fn alert(code: u32) {
    println!("{code}");
}

#[task(on_state = alert)]
async fn fetch(url: String) -> String {
    url
}

fn main() {}
