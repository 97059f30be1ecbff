use flowcore::task;

// A panic is never retried, so retries on an output that cannot be an `Err` never run.
#[task(retries = 3, retry_delay = "1s")]
async fn double(n: u64) -> u64 {
    n * 2
}

fn main() {}
