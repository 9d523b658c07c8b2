// `sqlx::migrate!` embeds migrations/postgres at compile time; rebuild when it changes.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations/postgres");
}
