use flowcore::task;

fn key(id: u32) -> String {
    id.to_string()
}

#[task(cache_for = "1h", cache_key = key)]
async fn load(id: u32) -> u32 {
    id
}

fn main() {}
