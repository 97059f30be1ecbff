//! Background tasks across processes: `cargo run --example thumbnails [-- --images N]`.
//!
//! The program starts two workers (itself again, with `--worker`), each serving the background
//! task `thumbnail` on the same store, then hands them N images at once with
//! `flowcore::map(…).on_workers()` and prints each result, in order, with the worker that made
//! it. On several machines the workers are the same binary started there with the same
//! `FLOWCORE_STORE=postgres://…`; here they share the default SQLite store (`FLOWCORE_HOME`).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use flowcore::{DelayedError, background, flow, task};
use serde::{Deserialize, Serialize};

/// What a worker sends back: serde types both ways, checked at compile time.
#[derive(Debug, Serialize, Deserialize)]
struct Thumbnail {
    image: String,
    width: u32,
    bytes: usize,
    made_by_pid: u32,
}

/// Makes a thumbnail (here: pretends to, in 50 ms). Runs on whichever worker claims it, with
/// its retries there.
#[task(background, retries = 2, retry_delay = "100ms")]
async fn thumbnail(image: String, width: u32) -> Result<Thumbnail, String> {
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(Thumbnail {
        bytes: image.len() * width as usize,
        image,
        width,
        made_by_pid: std::process::id(),
    })
}

#[flow]
async fn thumbnails(images: Vec<String>) -> Result<Vec<Thumbnail>, DelayedError> {
    let made = flowcore::map(images, |image| thumbnail(image, 128))
        .on_workers()
        .await?;
    made.into_iter().collect()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    flowcore::init_logging();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--worker") {
        // A worker: serves the task until SIGTERM or Ctrl-C.
        flowcore::serve_tasks([background(thumbnail)]).await?;
        return Ok(());
    }
    let count: usize = match args.iter().position(|a| a == "--images") {
        Some(at) => args
            .get(at + 1)
            .and_then(|n| n.parse().ok())
            .ok_or("--images takes a number, like --images 20")?,
        None => 12,
    };

    let mut workers: Vec<Child> = (0..2)
        .map(|_| {
            Command::new(std::env::current_exe()?)
                .arg("--worker")
                .stdout(Stdio::null())
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    let images: Vec<String> = (1..=count).map(|i| format!("photo-{i:03}.jpg")).collect();
    let made = thumbnails(images).await;
    for worker in &mut workers {
        // SIGTERM: each stops gracefully, its runs all ended.
        let _ = Command::new("kill").arg(worker.id().to_string()).status();
        let _ = worker.wait();
    }
    let made = made?;
    for t in &made {
        println!(
            "{} at {}px: {} bytes, by worker pid {}",
            t.image, t.width, t.bytes, t.made_by_pid
        );
    }
    let mut pids: Vec<u32> = made.iter().map(|t| t.made_by_pid).collect();
    pids.sort_unstable();
    pids.dedup();
    println!("{} thumbnails made by {} workers", made.len(), pids.len());
    Ok(())
}
