mod count {
    pub type Result = std::result::Result<u32, String>;

    #[flowcore::task(cache_for = "1d", retries = 1, retry_if = |e: &String| e.is_empty())]
    pub async fn count() -> Result {
        Ok(3)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(count::count().await, Ok(3));
}
