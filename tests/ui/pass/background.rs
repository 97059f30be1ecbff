//! Background tasks of every shape: plain and `Result` outputs, an alias, no arguments, retries
//! with owned arguments, a custom name; arguments named like the generated code's names.

use flowcore::{Background, BackgroundFn, task};
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
struct Image {
    url: String,
    width: u32,
}

#[task(background, retries = 2, timeout = "5s")]
async fn resize(image: Image, arguments: u32) -> Result<Vec<u8>, anyhow::Error> {
    Ok(format!("{}:{}:{arguments}", image.url, image.width).into_bytes())
}

#[task(background)]
async fn nothing() {}

#[task(background, name = "count-it")]
async fn count(items: Vec<String>, claim: Option<u8>) -> std::io::Result<usize> {
    Ok(items.len() + usize::from(claim.unwrap_or(0)))
}

fn served<A>(task: impl BackgroundFn<A>) -> &'static str {
    flowcore::background(task).name()
}

fn value_of<B: Background<Value = Vec<u8>>>(_: &flowcore::TaskCall<B>) {}

fn main() {
    assert_eq!(served(resize), "resize");
    assert_eq!(served(nothing), "nothing");
    assert_eq!(served(count), "count-it");
    value_of(&resize(Image { url: "a".into(), width: 1 }, 2));
}
