// `sqlx::migrate!` embeds services/store/migrations at compile time; rebuild
// when a migration is added or changed (as sqlx's documentation advises).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
