//! Links `berth-monitor` as a non-PIE executable: there is one monitor per
//! running container, and a PIE's relocated read-only data would be dirtied
//! (private memory) in every one of them.
fn main() {
    println!("cargo:rustc-link-arg-bin=berth-monitor=-no-pie");
}
