use flowcore::task;

mod errors {
    #[derive(Debug)]
    pub struct NoDisplay;
}

#[task(retries = 1, retry_if = |_| true)]
async fn parse(text: String) -> Result<u32, errors::NoDisplay> {
    text.parse().map_err(|_| errors::NoDisplay)
}

fn main() {}
