//! SCENARIOS 1: one task that prints a line, one flow that calls it.
//!
//! `cargo run --example hello`

use flowcore::{flow, task};

#[task]
async fn say_hello(name: &str) {
    println!("Hello, {name}!");
}

#[flow(name = "hello")]
async fn hello_flow(name: &str) {
    say_hello(name).await;
}

#[tokio::main]
async fn main() {
    flowcore::init_logging();
    hello_flow("world").await;
}
