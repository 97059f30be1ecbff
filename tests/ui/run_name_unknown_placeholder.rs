use flowcore::{flow, task};

#[task(task_run_name = "fetch-{ur}-{attempt}")]
async fn fetch(url: &str, attempt: u32) -> usize {
    url.len() + attempt as usize
}

#[flow(flow_run_name = "etl-{}")]
async fn etl(day: String) {
    let _ = day;
}

fn main() {}
