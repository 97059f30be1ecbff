// The generated code names everything by absolute path, so local items named like prelude and
// std items (and modules named `core` and `std`) do not change what it means.

#![allow(dead_code, non_camel_case_types)]

type Option = ();
type Result = ();
type Box = ();
type Vec = ();
type String = ();
type u32 = ();
mod core {}
mod std {}
mod flowcore {}

use ::flowcore::{RunInfo, State, flow, task};

fn on_state(_: &RunInfo, _: &State, _: &State) {}

fn transient(_: &::std::io::Error) -> bool {
    true
}

#[task(retries = 2, retry_delay = "1ms", retry_if = transient, on_state = on_state)]
async fn fetch(id: u64) -> ::std::io::Result<u64> {
    ::core::result::Result::Ok(id)
}

#[task(cache_for = "1h", tags = ["db"])]
async fn load(id: u64, name: &str) -> ::std::string::String {
    ::std::format!("{id}:{name}")
}

#[task]
async fn nothing() {}

#[task(retries = 1)]
async fn generic<T: ::core::clone::Clone + ::core::fmt::Debug>(
    value: T,
) -> ::core::result::Result<::std::string::String, ::std::string::String> {
    ::core::result::Result::Ok(::std::format!("{value:?}"))
}

#[flow(retries = 1, timeout = "5s", on_state = on_state)]
async fn pipeline(id: u64) -> ::core::result::Result<::std::string::String, ::std::boxed::Box<dyn ::std::error::Error + Send + Sync>> {
    let id = fetch(id).await?;
    nothing().await;
    let text = load(id, "a").await;
    let more = generic(id).await?;
    ::core::result::Result::Ok(::std::format!("{text} {more}"))
}

fn main() {
    let runtime = ::tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        ::flowcore::Store::memory().install().unwrap();
        let (out, run) = pipeline(7).with_run().await;
        ::core::assert_eq!(out.unwrap(), "7:a 7");
        ::core::assert!(run.state().is_completed());
    });
}
