use flowcore::task;

struct Report {
    rows: usize,
}

#[task(cache_for = "1d", retries = 1)]
async fn build_report(day: String) -> Result<Vec<Report>, std::io::Error> {
    Ok(vec![Report { rows: day.len() }])
}

fn main() {}
