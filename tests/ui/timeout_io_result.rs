use flowcore::task;

#[task(timeout = "5s")]
async fn read_config(path: String) -> std::io::Result<String> {
    std::fs::read_to_string(path)
}

fn main() {}
