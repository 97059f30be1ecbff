use flowcore::task;

#[task]
async unsafe fn fetch(ptr: usize) -> usize {
    ptr
}

fn main() {}
