use flowcore::{RunInfo, State, flow, task};

fn log_state(run: &RunInfo, old: &State, new: &State) {
    println!("{}: {:?} -> {:?}", run.name(), old.kind, new.kind);
}

fn count_state(_: &RunInfo, _: &State, _: &State) {}

fn notify(run: &RunInfo, state: &State) {
    println!("{} ended {:?}", run.name(), state.kind);
}

#[task(
    on_state = [log_state, count_state],
    on_failure = [notify, |run, state| println!("{} failed: {}", run.name(), state.message())],
    on_completion = |run, _state| println!("{} done", run.name()),
)]
async fn fetch(url: String) -> Result<String, String> {
    Ok(url)
}

#[flow(on_state = log_state, on_completion = [notify])]
async fn pipeline() -> Result<String, String> {
    fetch("x".into()).await
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(pipeline().await.unwrap(), "x");
}
