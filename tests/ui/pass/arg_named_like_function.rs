// An argument may have the function's name, or the name of a function given in the attribute,
// or of a name the generated code uses: each still means what it means in plain Rust.

use flowcore::{RunInfo, State, flow, task};

fn notify(_: &RunInfo, _: &State) {}

fn transient(error: &String) -> bool {
    error.contains("again")
}

fn key(key: &u32, _: &u32, _: &u32, _: &u32) -> String {
    key.to_string()
}

#[task]
async fn user(user: u32) -> u32 {
    user + 1
}

#[task(retries = 1, cache_for = "1h")]
async fn label(label: String, user: u32) -> Result<String, String> {
    Ok(format!("{label}-{user}"))
}

#[task]
async fn pair(pair: (u32, u32)) -> u32 {
    pair.0 + pair.1
}

#[task(retries = 1, retry_if = transient, on_failure = notify)]
async fn send(notify: u32, transient: bool) -> Result<u32, String> {
    if transient { Ok(notify) } else { Err("no".into()) }
}

#[task(cache_for = "1h", cache_key = key)]
async fn cached(key: u32, cache_key: u32, body: u32, spec: u32) -> u32 {
    key + cache_key + body + spec
}

#[allow(non_snake_case)]
#[task]
async fn SPEC(SPEC: u32, upstream: u32, cache: u32) -> u32 {
    SPEC + upstream + cache
}

#[flow(retries = 1)]
async fn report(report: u32) -> Result<String, String> {
    let user = user(report).await;
    label(String::from("id"), user).await
}

#[flow]
async fn total(total: u32) -> u32 {
    pair((total, 1)).await
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    flowcore::Store::memory().install().unwrap();
    assert_eq!(user(1).await, 2);
    assert_eq!(report(41).await.unwrap(), "id-42");
    assert_eq!(total(2).await, 3);
    assert_eq!(send(7, true).await, Ok(7));
    assert_eq!(cached(1, 2, 3, 4).await, 10);
    assert_eq!(SPEC(1, 2, 3).await, 6);
}
