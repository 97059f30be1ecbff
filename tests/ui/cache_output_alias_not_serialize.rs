mod report {
    pub struct Report;

    pub type Result = std::result::Result<Report, String>;

    #[flowcore::task(cache_for = "1d", retries = 1, retry_if = |e: &String| e.is_empty())]
    pub async fn build() -> Result {
        Ok(Report)
    }
}

fn main() {}
