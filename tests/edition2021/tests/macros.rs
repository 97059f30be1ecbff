//! The macros in a crate on edition 2021 (this package is on edition 2021): borrowed arguments, an optional borrowed argument and a generic task, awaited
//! inside a flow.

use std::fmt::Display;

use flowcore::StateKind::*;
use flowcore::{flow, task};

#[derive(Debug, Clone, PartialEq)]
struct Order {
    id: u32,
    items: Vec<&'static str>,
}

#[task]
async fn greet(name: &str) -> String {
    format!("Hello, {name}!")
}

#[task(retries = 1)]
async fn count_items(order: &Order) -> Result<usize, String> {
    Ok(order.items.len())
}

#[task]
async fn label(prefix: Option<&str>, id: u32) -> String {
    match prefix {
        Some(p) => format!("{p}-{id}"),
        None => id.to_string(),
    }
}

#[task(retries = 2)]
async fn describe<T: Display + Clone + Send + Sync>(
    value: T,
    times: usize,
) -> Result<String, String> {
    Ok(value.to_string().repeat(times))
}

// `gen` is a keyword from edition 2024 on, the macros' own edition: an argument of a 2021
// crate may still be named so, and an argument may have the function's name.
#[task(retries = 1)]
async fn repeat(gen: usize, repeat: &str) -> Result<String, String> {
    Ok(repeat.repeat(gen))
}

#[flow]
async fn gen(gen: usize) -> String {
    repeat(gen, "ab").await.unwrap()
}

#[flow(name = "edition-2021")]
async fn edition_flow(customer: &str, order: &Order) -> Vec<String> {
    let greeting = greet(customer).await;
    let count = count_items(order).await.unwrap();
    let with_prefix = label(Some("order"), order.id).await;
    let without_prefix = label(None, order.id).await;
    let number = describe(count, 2).await.unwrap();
    let text = describe(customer, 1).await.unwrap();
    vec![greeting, with_prefix, without_prefix, number, text]
}

#[tokio::test]
async fn borrowed_optional_and_generic_arguments_work_in_a_2021_crate() {
    // `gen` is a reserved keyword from edition 2024 on: this line proves the edition.
    let gen = "Ada".to_owned();
    let order = Order {
        id: 17,
        items: vec!["tea", "scones", "jam"],
    };
    let (out, run) = edition_flow(&gen, &order).with_run().await;
    assert_eq!(
        out,
        ["Hello, Ada!", "order-17", "17", "33", "Ada"].map(String::from)
    );
    assert_eq!(run.flow, "edition-2021");
    assert_eq!(run.history.kinds(), [Pending, Running, Completed]);
    let tasks: Vec<&str> = run.task_runs.iter().map(|r| &*r.task).collect();
    assert_eq!(
        tasks,
        [
            "greet",
            "count_items",
            "label",
            "label",
            "describe",
            "describe"
        ]
    );
    assert!(run.task_runs.iter().all(|r| r.flow_run_id == Some(run.id)));
    assert!(run.task_runs.iter().all(|r| r.state().kind == Completed));
    // The caller still owns what it lent.
    assert_eq!(order.items.len(), 3);
}

#[tokio::test]
async fn a_borrowed_argument_can_be_a_temporary_outside_a_flow() {
    let (out, run) = greet(&String::from("temp")).with_run().await;
    assert_eq!(out, "Hello, temp!");
    assert_eq!(run.flow_run_id, None);
    let (out, run) = describe(1.5_f64, 3).with_run().await;
    assert_eq!(out, Ok("1.51.51.5".to_owned()));
    assert_eq!(run.attempts, 1);
}

#[tokio::test]
async fn arguments_named_gen_or_like_the_function_work_in_a_2021_crate() {
    let (out, run) = gen(2).with_run().await;
    assert_eq!(out, "abab");
    assert_eq!(run.task_runs[0].state().kind, Completed);
}
