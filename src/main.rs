fn main() {
    println!("chorus");
}
