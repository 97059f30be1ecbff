use flowcore::task;

#[derive(Debug)]
pub struct NoDisplay;

#[task(cache_for = "1d")]
async fn parse(text: String) -> Result<u32, NoDisplay> {
    text.parse().map_err(|_| NoDisplay)
}

fn main() {}
