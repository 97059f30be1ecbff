use flowcore::task;

struct Config;

#[task(task_run_name = "load-{config}")]
async fn load(config: Config) {
    let _ = config;
}

fn wrong(n: u32) -> String {
    n.to_string()
}

#[task(task_run_name = wrong)]
async fn save(n: u32) {
    let _ = n;
}

fn main() {}
