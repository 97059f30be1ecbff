use flowcore::task;

#[task(colour = 1)]
async fn paint(wall: u32) -> u32 {
    wall
}

fn main() {}
