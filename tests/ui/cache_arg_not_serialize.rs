use flowcore::task;

struct Query {
    sql: String,
}

#[task(cache_for = "1h")]
async fn run_query(id: u32, query: Query) -> Vec<String> {
    vec![format!("{id}: {}", query.sql)]
}

fn main() {}
