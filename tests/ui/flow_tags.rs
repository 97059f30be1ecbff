use flowcore::flow;

#[flow(tags = ["etl"])]
async fn nightly() -> u32 {
    1
}

fn main() {}
