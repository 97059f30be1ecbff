use flowcore::task;

#[derive(Debug)]
struct NoDisplay;

#[task]
async fn parse(text: String) -> Result<u32, NoDisplay> {
    text.parse().map_err(|_| NoDisplay)
}

fn main() {}
