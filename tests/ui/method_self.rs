use flowcore::task;

struct Client {
    base: String,
}

impl Client {
    #[task]
    async fn fetch(&self, path: String) -> String {
        format!("{}{path}", self.base)
    }
}

fn main() {}
