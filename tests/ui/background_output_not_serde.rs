use flowcore::task;

struct Thumbnail {
    pixels: Vec<u8>,
}

#[task(background)]
async fn thumbnail(url: String) -> Result<Thumbnail, String> {
    Ok(Thumbnail { pixels: url.into_bytes() })
}

fn main() {}
