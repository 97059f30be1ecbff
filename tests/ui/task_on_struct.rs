use flowcore::task;

#[task]
struct Fetch {
    url: String,
}

fn main() {}
