use flowcore::task;

#[task(background = true)]
async fn square(n: u64) -> u64 {
    n * n
}

fn main() {}
