//! `Reference::parse` on any string: never panics, and what it accepts
//! prints as a reference that parses back to itself: always its full form;
//! its familiar form too, except where Docker's own does not (a Docker Hub
//! repository whose first component looks like a registry:
//! `docker.io/example.com/x` is shown as `example.com/x`, as `docker images`
//! shows it).
#![no_main]

use berth_types::Reference;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|s: &str| {
    let Ok(r) = Reference::parse(s) else {
        return;
    };
    let full = r.to_string();
    let again = Reference::parse(&full)
        .unwrap_or_else(|e| panic!("{s:?} parsed, but its full form {full:?} does not: {e}"));
    assert_eq!(again, r, "{s:?} → {full:?}");
    let familiar = r.familiar();
    match Reference::parse(&familiar) {
        Ok(back) if back == r => {}
        other => {
            let first = familiar.split('/').next().unwrap_or_default();
            let registry_like = familiar.contains('/')
                && (first.contains('.') || first.contains(':') || first == "localhost");
            assert!(
                full.starts_with("docker.io/") && registry_like,
                "{s:?} → familiar {familiar:?} → {other:?}, not {r:?}"
            );
        }
    }
    let _ = r.familiar_repository();
});
