//! Docker's seccomp profile format (`default.json`, `--security-opt
//! seccomp=FILE`), parsed into types and checked field by field.
//!
//! [`Profile::parse`] is a pure function from bytes: no I/O, no global
//! state, so a fuzz target can call it. Fields Docker ignores (`comment`,
//! unknown keys) are ignored here too; a field of the wrong type, an
//! unknown action, operator or architecture is an error naming the field
//! (`syscalls[3].args[0].op`), worded as Docker's runtime words it where
//! Docker has a wording.

use serde_json::{Map, Value};

/// What the kernel does with a syscall (`SCMP_ACT_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Allow,
    /// `SCMP_ACT_ERRNO`: fail with this errno.
    Errno(u32),
    /// `SCMP_ACT_KILL`, `SCMP_ACT_KILL_THREAD`.
    KillThread,
    KillProcess,
    /// `SCMP_ACT_TRAP`: SIGSYS.
    Trap,
    /// `SCMP_ACT_TRACE`: notify a ptrace tracer with this value.
    Trace(u32),
    /// `SCMP_ACT_LOG`: allow and log.
    Log,
    /// `SCMP_ACT_NOTIFY`: needs a user-space listener, which berth has not.
    Notify,
}

/// The comparison of one argument (`SCMP_CMP_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    /// `(arg & value) == value_two`.
    MaskedEq,
}

/// One `args[]` entry: `arg[index] op value` (`value_two` for MASKED_EQ).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ArgCmp {
    pub index: u8,
    pub value: u64,
    pub value_two: u64,
    pub op: Op,
}

/// `includes` / `excludes` of a rule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Condition {
    /// Capability names as written (`CAP_SYS_ADMIN`).
    pub caps: Vec<String>,
    /// Go architecture names as Docker writes them (`amd64`, `x32`, `arm64`).
    pub arches: Vec<String>,
    /// `minKernel`: (major, minor).
    pub min_kernel: Option<(u32, u32)>,
}

/// One `syscalls[]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyscallRule {
    pub names: Vec<String>,
    pub action: Action,
    pub args: Vec<ArgCmp>,
    pub includes: Condition,
    pub excludes: Condition,
}

/// A seccomp architecture (`SCMP_ARCH_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    X86,
    X86_64,
    X32,
    Arm,
    Aarch64,
    /// One of the others libseccomp knows (MIPS, PPC, S390, RISC-V, ...):
    /// valid in a profile, never the architecture berth runs on.
    Foreign,
}

/// `archMap[]`: an architecture and the sub-architectures it also runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchMapEntry {
    pub architecture: Arch,
    pub sub_architectures: Vec<Arch>,
}

/// A parsed seccomp profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    pub default_action: Action,
    /// `architectures`, when given.
    pub architectures: Vec<Arch>,
    /// `archMap`, when given.
    pub arch_map: Vec<ArchMapEntry>,
    pub syscalls: Vec<SyscallRule>,
}

/// Why a profile was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("decoding seccomp profile failed: {0}")]
    Json(String),
    #[error("decoding seccomp profile failed: {field}: {problem}")]
    Field {
        field: String,
        problem: FieldProblem,
    },
    #[error("'architectures' and 'archMap' were specified in the seccomp profile, use either 'architectures' or 'archMap'")]
    ArchitecturesAndArchMap,
}

/// What is wrong with a field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldProblem {
    #[error("missing")]
    Missing,
    #[error("expected {0}")]
    Type(&'static str),
    #[error("string {0} is not a valid action for seccomp")]
    Action(String),
    #[error("string {0} is not a valid arch for seccomp")]
    Arch(String),
    #[error("string {0} is not a valid operator for seccomp")]
    Op(String),
    #[error("syscalls only have up to 6 arguments ({0} given)")]
    ArgIndex(u64),
    #[error("errnoRet is only supported with SCMP_ACT_ERRNO and SCMP_ACT_TRACE")]
    ErrnoRetWithout,
    #[error("{0} is not an errno value (0 to 4095)")]
    Errno(u64),
    #[error("invalid kernel version {0:?} (want MAJOR.MINOR)")]
    KernelVersion(String),
    #[error(
        "'name' and 'names' were specified in the seccomp profile, use either 'name' or 'names'"
    )]
    NameAndNames,
}

fn field_err(field: impl Into<String>, problem: FieldProblem) -> ProfileError {
    ProfileError::Field {
        field: field.into(),
        problem,
    }
}

/// The kernel's largest errno a filter may return (`SECCOMP_RET_DATA` is
/// 16 bits, but errno values above MAX_ERRNO are not errors to libc).
const MAX_ERRNO: u64 = 4095;

impl Profile {
    /// Parses and checks a profile in Docker's JSON format.
    pub fn parse(bytes: &[u8]) -> Result<Profile, ProfileError> {
        let v: Value =
            serde_json::from_slice(bytes).map_err(|e| ProfileError::Json(e.to_string()))?;
        let top = v
            .as_object()
            .ok_or_else(|| field_err("(profile)", FieldProblem::Type("an object")))?;

        let default_errno = opt_u64(top, "defaultErrnoRet", "defaultErrnoRet")?;
        let default_action = match top.get("defaultAction") {
            None | Some(Value::Null) => {
                return Err(field_err("defaultAction", FieldProblem::Missing))
            }
            Some(a) => action(a, default_errno, "defaultAction", "defaultErrnoRet")?,
        };

        let architectures = match top.get("architectures") {
            None | Some(Value::Null) => Vec::new(),
            Some(a) => arch_list(a, "architectures")?,
        };
        let arch_map = match top.get("archMap") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(entries)) => entries
                .iter()
                .enumerate()
                .map(|(i, e)| arch_map_entry(e, &format!("archMap[{i}]")))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(field_err("archMap", FieldProblem::Type("an array"))),
        };
        if !architectures.is_empty() && !arch_map.is_empty() {
            return Err(ProfileError::ArchitecturesAndArchMap);
        }

        let syscalls = match top.get("syscalls") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(rules)) => rules
                .iter()
                .enumerate()
                .map(|(i, r)| syscall_rule(r, &format!("syscalls[{i}]")))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(field_err("syscalls", FieldProblem::Type("an array"))),
        };
        Ok(Profile {
            default_action,
            architectures,
            arch_map,
            syscalls,
        })
    }
}

fn opt_u64(obj: &Map<String, Value>, key: &str, field: &str) -> Result<Option<u64>, ProfileError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| field_err(field, FieldProblem::Type("a non-negative integer"))),
    }
}

fn string<'a>(v: &'a Value, field: &str) -> Result<&'a str, ProfileError> {
    v.as_str()
        .ok_or_else(|| field_err(field, FieldProblem::Type("a string")))
}

fn strings(v: &Value, field: &str) -> Result<Vec<String>, ProfileError> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, s)| string(s, &format!("{field}[{i}]")).map(str::to_string))
            .collect(),
        _ => Err(field_err(field, FieldProblem::Type("an array of strings"))),
    }
}

fn action(
    v: &Value,
    errno: Option<u64>,
    field: &str,
    errno_field: &str,
) -> Result<Action, ProfileError> {
    let name = string(v, field)?;
    let data = |default: u32| -> Result<u32, ProfileError> {
        match errno {
            None => Ok(default),
            Some(e) if e <= MAX_ERRNO => Ok(e as u32),
            Some(e) => Err(field_err(errno_field, FieldProblem::Errno(e))),
        }
    };
    let eperm = libc::EPERM as u32;
    let a = match name {
        "SCMP_ACT_ALLOW" => Action::Allow,
        "SCMP_ACT_ERRNO" => return Ok(Action::Errno(data(eperm)?)),
        "SCMP_ACT_TRACE" => return Ok(Action::Trace(data(eperm)?)),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
        "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
        "SCMP_ACT_TRAP" => Action::Trap,
        "SCMP_ACT_LOG" => Action::Log,
        "SCMP_ACT_NOTIFY" => Action::Notify,
        other => return Err(field_err(field, FieldProblem::Action(other.to_string()))),
    };
    if errno.is_some() {
        return Err(field_err(errno_field, FieldProblem::ErrnoRetWithout));
    }
    Ok(a)
}

fn arch(name: &str, field: &str) -> Result<Arch, ProfileError> {
    Ok(match name {
        "SCMP_ARCH_X86" => Arch::X86,
        "SCMP_ARCH_X86_64" => Arch::X86_64,
        "SCMP_ARCH_X32" => Arch::X32,
        "SCMP_ARCH_ARM" => Arch::Arm,
        "SCMP_ARCH_AARCH64" => Arch::Aarch64,
        "SCMP_ARCH_MIPS"
        | "SCMP_ARCH_MIPS64"
        | "SCMP_ARCH_MIPS64N32"
        | "SCMP_ARCH_MIPSEL"
        | "SCMP_ARCH_MIPSEL64"
        | "SCMP_ARCH_MIPSEL64N32"
        | "SCMP_ARCH_PPC"
        | "SCMP_ARCH_PPC64"
        | "SCMP_ARCH_PPC64LE"
        | "SCMP_ARCH_S390"
        | "SCMP_ARCH_S390X"
        | "SCMP_ARCH_PARISC"
        | "SCMP_ARCH_PARISC64"
        | "SCMP_ARCH_RISCV64"
        | "SCMP_ARCH_LOONGARCH64"
        | "SCMP_ARCH_M68K"
        | "SCMP_ARCH_SH"
        | "SCMP_ARCH_SHEB" => Arch::Foreign,
        other => return Err(field_err(field, FieldProblem::Arch(other.to_string()))),
    })
}

fn arch_list(v: &Value, field: &str) -> Result<Vec<Arch>, ProfileError> {
    strings(v, field)?
        .iter()
        .enumerate()
        .map(|(i, a)| arch(a, &format!("{field}[{i}]")))
        .collect()
}

fn arch_map_entry(v: &Value, field: &str) -> Result<ArchMapEntry, ProfileError> {
    let obj = v
        .as_object()
        .ok_or_else(|| field_err(field, FieldProblem::Type("an object")))?;
    let arch_field = format!("{field}.architecture");
    let architecture = match obj.get("architecture") {
        None | Some(Value::Null) => return Err(field_err(arch_field, FieldProblem::Missing)),
        Some(a) => arch(string(a, &arch_field)?, &arch_field)?,
    };
    let sub_architectures = match obj.get("subArchitectures") {
        None => Vec::new(),
        Some(s) => arch_list(s, &format!("{field}.subArchitectures"))?,
    };
    Ok(ArchMapEntry {
        architecture,
        sub_architectures,
    })
}

fn op(name: &str, field: &str) -> Result<Op, ProfileError> {
    Ok(match name {
        "SCMP_CMP_NE" => Op::Ne,
        "SCMP_CMP_LT" => Op::Lt,
        "SCMP_CMP_LE" => Op::Le,
        "SCMP_CMP_EQ" => Op::Eq,
        "SCMP_CMP_GE" => Op::Ge,
        "SCMP_CMP_GT" => Op::Gt,
        "SCMP_CMP_MASKED_EQ" => Op::MaskedEq,
        other => return Err(field_err(field, FieldProblem::Op(other.to_string()))),
    })
}

fn arg_cmp(v: &Value, field: &str) -> Result<ArgCmp, ProfileError> {
    let obj = v
        .as_object()
        .ok_or_else(|| field_err(field, FieldProblem::Type("an object")))?;
    let index = opt_u64(obj, "index", &format!("{field}.index"))?.unwrap_or(0);
    if index > 5 {
        return Err(field_err(
            format!("{field}.index"),
            FieldProblem::ArgIndex(index + 1),
        ));
    }
    let value = opt_u64(obj, "value", &format!("{field}.value"))?.unwrap_or(0);
    let value_two = opt_u64(obj, "valueTwo", &format!("{field}.valueTwo"))?.unwrap_or(0);
    let op_field = format!("{field}.op");
    let op = match obj.get("op") {
        None | Some(Value::Null) => return Err(field_err(op_field, FieldProblem::Missing)),
        Some(o) => op(string(o, &op_field)?, &op_field)?,
    };
    Ok(ArgCmp {
        index: index as u8,
        value,
        value_two,
        op,
    })
}

fn condition(v: Option<&Value>, field: &str) -> Result<Condition, ProfileError> {
    let obj = match v {
        None | Some(Value::Null) => return Ok(Condition::default()),
        Some(Value::Object(o)) => o,
        Some(_) => return Err(field_err(field, FieldProblem::Type("an object"))),
    };
    let get = |k: &str| obj.get(k).unwrap_or(&Value::Null);
    let caps = strings(get("caps"), &format!("{field}.caps"))?;
    let arches = strings(get("arches"), &format!("{field}.arches"))?;
    let min_kernel = match get("minKernel") {
        Value::Null => None,
        k => {
            let f = format!("{field}.minKernel");
            Some(kernel_version(string(k, &f)?).ok_or_else(|| {
                field_err(
                    f,
                    FieldProblem::KernelVersion(k.as_str().unwrap_or("").into()),
                )
            })?)
        }
    };
    Ok(Condition {
        caps,
        arches,
        min_kernel,
    })
}

/// `MAJOR.MINOR`, as Docker's `minKernel` takes it.
pub fn kernel_version(s: &str) -> Option<(u32, u32)> {
    let (major, minor) = s.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

fn syscall_rule(v: &Value, field: &str) -> Result<SyscallRule, ProfileError> {
    let obj = v
        .as_object()
        .ok_or_else(|| field_err(field, FieldProblem::Type("an object")))?;
    let mut names = match obj.get("names") {
        None => Vec::new(),
        Some(n) => strings(n, &format!("{field}.names"))?,
    };
    match obj.get("name") {
        None | Some(Value::Null) => {}
        Some(n) => {
            let n = string(n, &format!("{field}.name"))?;
            if !n.is_empty() {
                if !names.is_empty() {
                    return Err(field_err(field, FieldProblem::NameAndNames));
                }
                names.push(n.to_string());
            }
        }
    }
    let errno = opt_u64(obj, "errnoRet", &format!("{field}.errnoRet"))?;
    let action_field = format!("{field}.action");
    let action = match obj.get("action") {
        None | Some(Value::Null) => return Err(field_err(action_field, FieldProblem::Missing)),
        Some(a) => action(a, errno, &action_field, &format!("{field}.errnoRet"))?,
    };
    let args = match obj.get("args") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, c)| arg_cmp(c, &format!("{field}.args[{i}]")))
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(field_err(
                format!("{field}.args"),
                FieldProblem::Type("an array"),
            ))
        }
    };
    Ok(SyscallRule {
        names,
        action,
        args,
        includes: condition(obj.get("includes"), &format!("{field}.includes"))?,
        excludes: condition(obj.get("excludes"), &format!("{field}.excludes"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> String {
        match Profile::parse(json.as_bytes()) {
            Ok(p) => panic!("accepted: {p:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_a_small_profile() {
        let p = Profile::parse(
            br#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X32"],
                 "syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13,"comment":"x"},
                             {"name":"clone","action":"SCMP_ACT_ALLOW",
                              "args":[{"index":0,"value":2114060288,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}],
                              "excludes":{"caps":["CAP_SYS_ADMIN"]},"includes":{"minKernel":"4.8","arches":["amd64"]}}],
                 "unknownKey": 1}"#,
        )
        .unwrap();
        assert_eq!(p.default_action, Action::Allow);
        assert_eq!(p.architectures, vec![Arch::X86_64, Arch::X32]);
        assert_eq!(p.syscalls.len(), 2);
        assert_eq!(p.syscalls[0].action, Action::Errno(13));
        assert_eq!(p.syscalls[1].names, vec!["clone"]);
        assert_eq!(
            p.syscalls[1].args,
            vec![ArgCmp {
                index: 0,
                value: 2_114_060_288,
                value_two: 0,
                op: Op::MaskedEq
            }]
        );
        assert_eq!(p.syscalls[1].excludes.caps, vec!["CAP_SYS_ADMIN"]);
        assert_eq!(p.syscalls[1].includes.min_kernel, Some((4, 8)));
    }

    #[test]
    fn errno_defaults_to_eperm_and_default_errno_applies() {
        let p = Profile::parse(
            br#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,
            "syscalls":[{"names":["a"],"action":"SCMP_ACT_ERRNO"}]}"#,
        )
        .unwrap();
        assert_eq!(p.default_action, Action::Errno(38));
        assert_eq!(p.syscalls[0].action, Action::Errno(1));
        let p = Profile::parse(br#"{"defaultAction":"SCMP_ACT_KILL"}"#).unwrap();
        assert_eq!(p.default_action, Action::KillThread);
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            err(r#"{"defaultAction":"SCMP_ACT_FOO"}"#),
            "decoding seccomp profile failed: defaultAction: string SCMP_ACT_FOO is not a valid action for seccomp"
        );
        assert_eq!(
            err(
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["a"],"action":"SCMP_ACT_ALLOW"},{"names":"mkdir","action":"SCMP_ACT_ERRNO"}]}"#
            ),
            "decoding seccomp profile failed: syscalls[1].names: expected an array of strings"
        );
        assert_eq!(
            err(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["a"],"action":"SCMP_ACT_ERRNO","args":[{"index":7,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#),
            "decoding seccomp profile failed: syscalls[0].args[0].index: syscalls only have up to 6 arguments (8 given)"
        );
        assert_eq!(
            err(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["a"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"op":"SCMP_CMP_XX"}]}]}"#),
            "decoding seccomp profile failed: syscalls[0].args[0].op: string SCMP_CMP_XX is not a valid operator for seccomp"
        );
        assert_eq!(
            err(r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_FOO"]}"#),
            "decoding seccomp profile failed: architectures[0]: string SCMP_ARCH_FOO is not a valid arch for seccomp"
        );
        assert_eq!(
            err(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["a"],"action":"SCMP_ACT_ALLOW","errnoRet":1}]}"#),
            "decoding seccomp profile failed: syscalls[0].errnoRet: errnoRet is only supported with SCMP_ACT_ERRNO and SCMP_ACT_TRACE"
        );
        assert_eq!(
            err(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["a"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"4"}}]}"#),
            "decoding seccomp profile failed: syscalls[0].includes.minKernel: invalid kernel version \"4\" (want MAJOR.MINOR)"
        );
        assert_eq!(
            err(r#"{"syscalls":[]}"#),
            "decoding seccomp profile failed: defaultAction: missing"
        );
        assert!(err(r#"{"defaultAction":"SCMP_ACT_ALLOW","#)
            .starts_with("decoding seccomp profile failed: EOF"));
        assert!(err("[]").contains("(profile): expected an object"));
        assert_eq!(
            err(
                r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86"],"archMap":[{"architecture":"SCMP_ARCH_X86_64"}]}"#
            ),
            ProfileError::ArchitecturesAndArchMap.to_string()
        );
        assert!(
            err(r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":70000}"#)
                .contains("defaultErrnoRet: 70000 is not an errno value")
        );
    }

    #[test]
    fn the_builtin_default_parses() {
        let p = Profile::parse(super::super::DEFAULT_PROFILE_JSON).unwrap();
        assert_eq!(p.default_action, Action::Errno(1));
        assert!(p.syscalls.len() > 20);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap stand-in for the fuzz target: truncations and byte flips
        // of a real profile must give Ok or Err, never a panic.
        let base = super::super::DEFAULT_PROFILE_JSON;
        for cut in (0..base.len()).step_by(97) {
            let _ = Profile::parse(&base[..cut]);
        }
        let mut b = base.to_vec();
        for i in (0..b.len()).step_by(131) {
            b[i] ^= 0x5a;
            let _ = Profile::parse(&b);
        }
    }
}
