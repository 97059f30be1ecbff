use std::borrow::Cow;

use flowcore::task;

struct Config {
    prefix: String,
}

#[task]
async fn greet(name: &str) -> String {
    format!("Hello, {name}!")
}

#[task(retries = 2)]
async fn prefixed<'a>(config: &'a Config, name: &'a str) -> Result<String, String> {
    Ok(format!("{}{name}", config.prefix))
}

#[task]
async fn shout(text: Cow<'_, str>) -> String {
    text.to_uppercase()
}

#[task(cache_for = "1h")]
async fn cached_len(text: &str, extra: Cow<'_, str>) -> usize {
    text.len() + extra.len()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let config = Config {
        prefix: "dear ".into(),
    };
    let name = String::from("Ada");
    assert_eq!(greet(&name).await, "Hello, Ada!");
    assert_eq!(prefixed(&config, &name).await.unwrap(), "dear Ada");
    assert_eq!(shout(Cow::Borrowed("hi")).await, "HI");
    assert_eq!(cached_len("ab", Cow::Owned("c".into())).await, 3);
}
