//! A photo API on 127.0.0.1, answering like Unsplash's "random photo" endpoint, flaky on
//! purpose: its first requests fail with 503 Service Unavailable.
//!
//! - `GET /photos/random?topic=cats` answers a photo's JSON,
//!   `{"id": "cats-1", "topic": "cats", "urls": {"raw": "http://127.0.0.1:PORT/images/cats-1.png"}}`;
//!   photo ids count up from 1 (`<topic>-<n>`).
//! - `GET /images/<id>.png` streams that photo: a small PNG, the same bytes for the same id
//!   ([`image_bytes`]); an id the API never gave out answers 404 Not Found.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State as Shared};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The photo API, running in the background until the program ends.
pub struct Service {
    url: String,
    state: Arc<Api>,
}

struct Api {
    /// How many photo requests fail with 503 before the API starts answering.
    fail_first: usize,
    photo_requests: AtomicUsize,
    image_requests: AtomicUsize,
    /// The ids of the photos given out, which `/images/<id>.png` serves.
    photos: Mutex<HashSet<String>>,
    /// Where the API is, for the image URLs it gives out.
    base: String,
}

impl Service {
    /// The API's base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Requests made to `/photos/random` so far, those answered 503 included.
    pub fn photo_requests(&self) -> usize {
        self.state.photo_requests.load(Ordering::SeqCst)
    }

    /// Requests made to `/images/…` so far.
    pub fn image_requests(&self) -> usize {
        self.state.image_requests.load(Ordering::SeqCst)
    }

    /// How many photo requests it answers 503 before it works.
    pub fn fail_first(&self) -> usize {
        self.state.fail_first
    }
}

/// Starts the photo API on a free port of 127.0.0.1, in the background. Its first
/// `fail_first` photo requests are answered 503 Service Unavailable.
pub async fn start(fail_first: usize) -> anyhow::Result<Service> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let state = Arc::new(Api {
        fail_first,
        photo_requests: AtomicUsize::new(0),
        image_requests: AtomicUsize::new(0),
        photos: Mutex::new(HashSet::new()),
        base: url.clone(),
    });
    let app = Router::new()
        .route("/photos/random", get(random_photo))
        .route("/images/{file}", get(image))
        .with_state(Arc::clone(&state));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(Service { url, state })
}

async fn random_photo(Shared(api): Shared<Arc<Api>>, RawQuery(query): RawQuery) -> Response {
    let n = api.photo_requests.fetch_add(1, Ordering::SeqCst) + 1;
    if n <= api.fail_first {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "over capacity, try again later",
        )
            .into_response();
    }
    // Topics are plain words: no percent-decoding needed.
    let topic = query
        .as_deref()
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("topic="))
        .unwrap_or_default()
        .to_owned();
    if topic.is_empty() || !topic.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') {
        return (
            StatusCode::BAD_REQUEST,
            "give a topic of lowercase letters: /photos/random?topic=cats",
        )
            .into_response();
    }
    // Photo numbers count the requests since the API started working, from 1.
    let id = format!("{topic}-{}", n - api.fail_first);
    api.photos
        .lock()
        .expect("the photo list is never poisoned")
        .insert(id.clone());
    let raw = format!("{}/images/{id}.png", api.base);
    axum::Json(serde_json::json!({
        "id": id,
        "topic": topic,
        "urls": { "raw": raw },
    }))
    .into_response()
}

/// How the image is sent: in pieces of this many bytes, as a large file would be.
const PIECE: usize = 4096;

async fn image(Shared(api): Shared<Arc<Api>>, Path(file): Path<String>) -> Response {
    api.image_requests.fetch_add(1, Ordering::SeqCst);
    let known = file.strip_suffix(".png").filter(|id| {
        api.photos
            .lock()
            .expect("the photo list is never poisoned")
            .contains(*id)
    });
    let Some(id) = known else {
        return (StatusCode::NOT_FOUND, "no such image").into_response();
    };
    let bytes = image_bytes(id);
    let pieces: Vec<Result<Bytes, std::convert::Infallible>> = bytes
        .chunks(PIECE)
        .map(|piece| Ok(Bytes::copy_from_slice(piece)))
        .collect();
    (
        [(header::CONTENT_TYPE, "image/png")],
        Body::from_stream(futures::stream::iter(pieces)),
    )
        .into_response()
}

/// The photo with this id: a 64 × 64 PNG, a diagonal gradient between two colours taken from
/// the id, about 12 KB (uncompressed pixels, so that there is something to stream).
pub fn image_bytes(id: &str) -> Vec<u8> {
    const SIZE: u32 = 64;
    let seed = fnv1a(id.as_bytes()).to_be_bytes();
    let (from, to) = ([seed[0], seed[1], seed[2]], [seed[3], seed[4], seed[5]]);
    // Each row: filter type 0 (none), then RGB pixels.
    let mut pixels = Vec::with_capacity((SIZE * (1 + 3 * SIZE)) as usize);
    for y in 0..SIZE {
        pixels.push(0);
        for x in 0..SIZE {
            let t = (x + y) as f32 / (2 * (SIZE - 1)) as f32;
            for c in 0..3 {
                let v = f32::from(from[c]) + (f32::from(to[c]) - f32::from(from[c])) * t;
                pixels.push(v.round() as u8);
            }
        }
    }

    let mut header = Vec::with_capacity(13);
    header.extend_from_slice(&SIZE.to_be_bytes()); // width
    header.extend_from_slice(&SIZE.to_be_bytes()); // height
    header.extend_from_slice(&[8, 2, 0, 0, 0]); // 8 bits, RGB, deflate, no filter, no interlace

    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    push_chunk(&mut png, b"IHDR", &header);
    push_chunk(&mut png, b"IDAT", &zlib_stored(&pixels));
    push_chunk(&mut png, b"IEND", &[]);
    png
}

/// `data` as a zlib stream of one uncompressed ("stored") deflate block: PNG needs zlib, not
/// compression.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).expect("one stored block holds at most 65535 bytes");
    let mut out = vec![0x78, 0x01, 0x01]; // zlib header; final block, stored
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

fn push_chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    let len = u32::try_from(data.len()).expect("a PNG chunk is under 4 GB");
    png.extend_from_slice(&len.to_be_bytes());
    let start = png.len();
    png.extend_from_slice(kind);
    png.extend_from_slice(data);
    let crc = crc32(&png[start..]);
    png.extend_from_slice(&crc.to_be_bytes());
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in bytes {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
