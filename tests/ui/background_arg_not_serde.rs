use flowcore::task;

struct Image {
    pixels: Vec<u8>,
}

#[task(background)]
async fn resize(width: u32, image: Image) -> usize {
    image.pixels.len() * width as usize
}

fn main() {}
