use flowcore::{flow, task};

#[task(flow_run_name = "fetch-{url}")]
async fn fetch(url: &str) -> usize {
    url.len()
}

#[flow(task_run_name = "etl")]
async fn etl() {}

fn main() {}
