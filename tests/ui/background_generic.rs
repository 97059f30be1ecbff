use flowcore::task;

#[task(background)]
async fn describe<T: std::fmt::Debug + Send>(value: T) -> String {
    format!("{value:?}")
}

fn main() {}
