//! The image downloader flow, its tasks and its deployment: shared by the `images` example,
//! which serves it, and by `tests/images.rs`.
//!
//! `get_data` asks the photo API for a random photo of a random topic, retrying up to 10
//! times 15 s apart because the API is flaky; `transform` takes the image's URL from the
//! answer; `store` streams the image to a file. The flow's final state is reported to
//! [`finished_runs`] subscribers, with the file it saved.

use std::collections::HashMap;
use std::hash::{BuildHasher as _, Hasher as _, RandomState};
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};

use anyhow::Context as _;
use flowcore::{Deployment, RunInfo, State, flow, task};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::broadcast;

/// The topics `get_data` picks from.
pub const TOPICS: [&str; 6] = [
    "cats",
    "mountains",
    "oceans",
    "forests",
    "bridges",
    "deserts",
];

/// The photo API runs on this machine: its requests never go through an `HTTP_PROXY`.
///
/// No timeout: a slow download is not an error here. (Under a paused tokio clock, as in the
/// tests, a client timeout could also fire while the clock jumps ahead.) Runs are a minute
/// apart, so connections are not kept open between them.
static HTTP: LazyLock<reqwest::Client> = LazyLock::new(|| {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .expect("a plain HTTP client builds")
});

#[task(retries = 10, retry_delay = "15s")]
pub async fn get_data(api: &str) -> anyhow::Result<serde_json::Value> {
    let url = format!("{api}/photos/random?topic={}", random_topic());
    let response = HTTP.get(&url).send().await?;
    let status = response.status();
    if !status.is_success() {
        anyhow::bail!("the photo API answered {status}");
    }
    Ok(response.json().await?)
}

/// One of [`TOPICS`], at random. (Each `RandomState` has its own random keys: what a new one
/// hashes, even nothing, is a fresh random number. No `rand` crate needed.)
fn random_topic() -> &'static str {
    let random = RandomState::new().build_hasher().finish();
    TOPICS[(random % TOPICS.len() as u64) as usize]
}

#[task]
pub async fn transform(data: serde_json::Value) -> anyhow::Result<String> {
    match data.pointer("/urls/raw").and_then(|url| url.as_str()) {
        Some(url) => Ok(url.to_owned()),
        None => anyhow::bail!("the photo API's answer has no image URL at urls.raw: {data}"),
    }
}

/// Downloads `url` into the file `path`, piece by piece as the bytes arrive (an image is
/// never held whole in memory); returns how many bytes were written. The bytes go to
/// `<path>.part` first, renamed to `path` once complete, so that a failed download leaves no
/// half image behind.
#[task]
pub async fn store(url: String, path: PathBuf) -> anyhow::Result<u64> {
    let mut response = HTTP.get(&url).send().await?;
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        anyhow::bail!("downloading {url} failed with status code {status}");
    }
    let mut partial = path.clone().into_os_string();
    partial.push(".part");
    let partial = PathBuf::from(partial);
    let mut file = tokio::fs::File::create(&partial)
        .await
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let mut written = 0;
    let copied = async {
        while let Some(piece) = response.chunk().await? {
            file.write_all(&piece).await?;
            written += piece.len() as u64;
        }
        file.flush().await?;
        drop(file);
        tokio::fs::rename(&partial, &path).await?;
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = copied {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(e.context(format!("downloading {url} to {}", path.display())));
    }
    Ok(written)
}

#[flow(name = "images", on_completion = report, on_failure = report)]
pub async fn images(api: String, out_dir: String) -> anyhow::Result<PathBuf> {
    let data = get_data(&api).await?;
    let url = transform(data).await?;
    let dir = PathBuf::from(out_dir);
    tokio::fs::create_dir_all(&dir)
        .await
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(file_name(&url));
    let bytes = store(url, path.clone()).await?;
    tracing::info!("Saved {} ({bytes} bytes)", path.display());
    remember(Saved {
        path: path.clone(),
        bytes,
    });
    Ok(path)
}

/// The file name for the image at `url`: the last segment of its path, with only the
/// characters that are safe in a file name (the URL comes from the API's answer).
fn file_name(url: &str) -> String {
    let last = url
        .split(['?', '#'])
        .next()
        .and_then(|path| path.rsplit('/').next())
        .unwrap_or_default();
    let safe: String = last
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    match safe.trim_start_matches('.') {
        "" => "image.png".to_owned(),
        name => name.to_owned(),
    }
}

/// The flow's parameters, as a deployment gives them: the photo API's base URL and the
/// directory the images go to.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Params {
    pub api: String,
    pub out_dir: String,
}

/// The `images` deployment of the flow with these parameters, without a schedule yet.
pub fn deployment(params: Params) -> Deployment {
    Deployment::new("images", |p: Params| images(p.api, p.out_dir)).parameters(params)
}

/// A file a run of `images` saved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Saved {
    pub path: PathBuf,
    pub bytes: u64,
}

/// A run of `images` that reached its final state (Completed, Failed or TimedOut).
#[derive(Clone, Debug)]
pub struct Finished {
    pub name: String,
    pub state: State,
    /// The file it saved; `None` if it failed.
    pub saved: Option<Saved>,
}

static FINISHED: LazyLock<broadcast::Sender<Finished>> = LazyLock::new(|| broadcast::channel(64).0);

/// Every run of `images` that finishes from now on, in this process.
pub fn finished_runs() -> broadcast::Receiver<Finished> {
    FINISHED.subscribe()
}

/// What each run saved, by run id, until the run's hook reports it: a flow's hooks learn
/// the run's id, name and state, not its output.
static SAVED: LazyLock<Mutex<HashMap<flowcore::Uuid, Saved>>> = LazyLock::new(Default::default);

fn remember(saved: Saved) {
    if let Some(run) = flowcore::runtime::flow_run() {
        SAVED.lock().expect("never poisoned").insert(run.id, saved);
    }
}

/// The flow's `on_completion` and `on_failure` hook: tells [`finished_runs`] subscribers.
fn report(run: &RunInfo, state: &State) {
    let saved = SAVED
        .lock()
        .expect("never poisoned")
        .remove(&run.id())
        .filter(|_| state.is_completed());
    // No subscriber is no error: nobody is listening.
    let _ = FINISHED.send(Finished {
        name: run.name().to_string(),
        state: state.clone(),
        saved,
    });
}
