//! Build script: `sqlx::migrate!` embeds services/store/migrations at compile time, so the crate is
//! rebuilt when a migration is added or changed (as sqlx's documentation advises).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
