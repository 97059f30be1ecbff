use flowcore::flow;

#[flow(background)]
async fn nightly() {}

fn main() {}
