use flowcore::task;

#[task(timeout = "30s")]
async fn slow(n: u64) -> u64 {
    n * 2
}

fn main() {}
