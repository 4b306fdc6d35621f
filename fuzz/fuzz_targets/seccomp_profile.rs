//! Docker seccomp profiles (`--security-opt seccomp=FILE`): any bytes parse
//! or are refused with an error; a profile that parses is evaluated against
//! Docker's default capabilities and against all of them, and compiled,
//! without panicking; the compiled filter survives its cache encoding. The
//! cache reader itself takes any bytes without panicking.
#![no_main]

use berth_runtime::seccomp::{compile, evaluate, CompiledFilters, Profile, Target};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = CompiledFilters::from_bytes(data);
    let Ok(profile) = Profile::parse(data) else {
        return;
    };
    for caps in [berth_runtime::caps::DOCKER_DEFAULT, u64::MAX] {
        let target = Target::host(caps);
        let _ = evaluate(&profile, &target);
        if let Ok(filters) = compile(&profile, &target) {
            let bytes = filters.to_bytes();
            let back = CompiledFilters::from_bytes(&bytes);
            assert!(back.is_ok(), "a compiled filter does not read back");
        }
    }
});
