use flowcore::flow;

#[flow(retries = 2)]
async fn nightly(day: u32) -> Vec<String> {
    vec![day.to_string()]
}

fn main() {}
