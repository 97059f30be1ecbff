use flowcore::task;

struct Report {
    rows: usize,
}

#[task(cache_for = "1d")]
async fn build_report(day: String) -> Result<Report, std::io::Error> {
    Ok(Report { rows: day.len() })
}

fn main() {}
