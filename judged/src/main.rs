fn main() {
    println!("judged: not yet");
}
