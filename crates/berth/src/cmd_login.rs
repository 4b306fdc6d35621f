//! `berth login` and `berth logout`: Docker's config file and credential
//! helpers (berth_registry::credentials), the login checked against the
//! registry first (berth_registry::auth::verify_login). The words are
//! docker 28's. A password is never printed, logged or written anywhere
//! but the config file or its helper.

use std::io::{BufRead as _, Read as _, Write as _};

use anyhow::{bail, Context as _, Result};
use berth_registry::credentials::{registry_key, Credentials, DockerConfig};

use crate::cli::{LoginArgs, LogoutArgs};
use crate::usage::CliError;

/// docker's own words for a refused command line: no "Error:", exit 1.
fn bare(message: &str) -> anyhow::Error {
    CliError::Bare {
        message: message.to_string(),
        code: 1,
    }
    .into()
}

/// `berth login`: its exit status.
pub fn login(a: &LoginArgs) -> Result<i32> {
    if a.password.is_some() && a.password_stdin {
        return Err(bare(
            "conflicting options: cannot specify both --password and --password-stdin",
        ));
    }
    if a.password_stdin && a.username.is_none() {
        return Err(bare(
            "the --password-stdin option requires --username to be set",
        ));
    }
    let mut username = a.username.as_deref().map(|u| u.trim().to_string());
    if username.as_deref() == Some("") {
        return Err(bare("username is empty"));
    }
    let mut password = a.password.clone();
    if password.as_deref() == Some("") {
        return Err(bare("password is empty"));
    }
    if password.is_some() {
        errln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    if a.password_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the password from stdin")?;
        let text = text.strip_suffix('\n').unwrap_or(&text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        password = Some(text.to_string()).filter(|p| !p.is_empty());
    }
    let server = a.server.as_deref().unwrap_or("");
    let key = registry_key(server);
    let mut config = DockerConfig::load_default()?;

    // No flags: the stored credentials, if they still work; their username
    // is the prompt's default.
    let mut default_username = None;
    if username.is_none() && password.is_none() {
        if let Some(stored) = config.get(&key)? {
            default_username = Some(stored.username.clone()).filter(|u| !u.is_empty());
            errln!(
                "Authenticating with existing credentials... [Username: {}]",
                stored.username
            );
            // docker's hint, before it tries them; in colour on a terminal.
            let hint =
                "To login with a different account, run 'berth logout' followed by 'berth login'";
            if rustix::termios::isatty(std::io::stderr()) {
                errln!("\n\x1b[1m\x1b[106m\x1b[30mi\x1b[0m\x1b[0m \x1b[96mInfo \u{2192} \x1b[0m\x1b[0m\x1b[3m{hint}\x1b[0m\n\n");
            } else {
                errln!("\n Info -> {hint}\n\n");
            }
            match crate::cmd_pull::registry_settings()?.verify_login(server, &stored) {
                Ok(_) => {
                    outln!("Login Succeeded")?;
                    return Ok(0);
                }
                Err(e) => errln!("Login did not succeed, error: Error response from daemon: {e}"),
            }
        }
    }
    let stdin_is_terminal = rustix::termios::isatty(std::io::stdin());
    if username.is_none() || password.is_none() {
        if !stdin_is_terminal {
            bail!("Cannot perform an interactive login from a non TTY device");
        }
        if username.is_none() {
            let question = match &default_username {
                Some(d) => format!("Username ({d}): "),
                None => "Username: ".to_string(),
            };
            let u = prompt(&question)?.trim().to_string();
            let u = match (u.is_empty(), default_username) {
                (true, Some(d)) => d,
                _ => u,
            };
            if u.is_empty() {
                bail!("Non-null Username Required");
            }
            username = Some(u);
        }
        if password.is_none() {
            let p = prompt_hidden("Password: ")?;
            if p.is_empty() {
                bail!("Password Required");
            }
            password = Some(p);
        }
    }
    let creds = Credentials {
        username: username.unwrap_or_default(),
        password: password.unwrap_or_default(),
        identity_token: None,
    };
    let creds = match crate::cmd_pull::registry_settings()?.verify_login(server, &creds) {
        Ok(Some(identity_token)) => Credentials {
            password: String::new(),
            identity_token: Some(identity_token),
            ..creds
        },
        Ok(None) => creds,
        Err(e) => {
            errln!("Error response from daemon: {e}");
            return Ok(1);
        }
    };
    let in_helper = config.helper_for(&key).is_some();
    config
        .store(&key, &creds)
        .context("error saving credentials")?;
    if !in_helper {
        errln!(
            "\nWARNING! Your credentials are stored unencrypted in '{}'.\nConfigure a credential helper to remove this warning. See\nhttps://docs.docker.com/go/credential-store/\n",
            config.path().display()
        );
    }
    outln!("Login Succeeded")?;
    Ok(0)
}

/// `berth logout`: its exit status (0 even when a helper could not erase,
/// as docker's, with a warning).
pub fn logout(a: &LogoutArgs) -> Result<i32> {
    let key = registry_key(a.server.as_deref().unwrap_or(""));
    let mut config = DockerConfig::load_default()?;
    outln!("Removing login credentials for {key}")?;
    if let Err(e) = config.erase(&key) {
        errln!("WARNING: could not erase credentials:\n{key}: {e}");
    }
    Ok(0)
}

/// Asks on stdout, reads a line from stdin.
fn prompt(question: &str) -> Result<String> {
    out!("{question}")?;
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read from stdin")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// [`prompt`] with the terminal's echo off (restored whatever happens).
fn prompt_hidden(question: &str) -> Result<String> {
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).context("cannot read the terminal's settings")?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    tcsetattr(&stdin, OptionalActions::Flush, &quiet).context("cannot turn off echo")?;
    let answer = prompt(question);
    let restored = tcsetattr(&stdin, OptionalActions::Flush, &saved);
    outln!()?;
    restored.context("cannot restore the terminal's settings")?;
    answer
}

/// How a command that needs no store ends: its status, or its error as
/// docker's CLI prints one (`Error: …`, 1).
pub fn finish(res: Result<i32>) -> crate::Exit {
    match res {
        Ok(code) => crate::Exit::Code(code),
        Err(err) if crate::is_closed_stdout(&err) => crate::Exit::BrokenPipe,
        Err(err) => match err.downcast_ref::<CliError>() {
            Some(CliError::Bare { message, code }) => {
                errln!("{message}");
                crate::Exit::Code(*code)
            }
            _ => {
                errln!("Error: {}", crate::commands::error_chain(&err));
                crate::Exit::Code(1)
            }
        },
    }
}
