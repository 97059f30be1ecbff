use flowcore::task;

struct Connection;

#[task(retries = 3)]
async fn query(conn: Connection, sql: String) -> Result<u64, std::io::Error> {
    let _ = (conn, sql);
    Ok(0)
}

fn main() {}
