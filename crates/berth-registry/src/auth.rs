//! The challenge flow: anonymous and Bearer tokens, Basic auth, and where
//! credentials come from. (Issue 9; filled in by the auth work.)

use crate::{Auth, RegistryError};

/// No credentials: a Bearer challenge is answered with an anonymous token,
/// nothing else is.
#[derive(Debug, Default)]
pub struct Anonymous;

impl Auth for Anonymous {
    fn authorize(
        &self,
        _registry: &str,
        _challenge: &str,
        _scope: &str,
    ) -> Result<Option<String>, RegistryError> {
        Ok(None)
    }
}
