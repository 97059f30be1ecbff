use flowcore::flow;

#[flow(cache_for = "1d")]
async fn nightly() -> u32 {
    1
}

fn main() {}
