//! Credentials: the broker's users file (SCRAM credentials, stored salted) and a client's
//! mechanism, user name and password (from the environment or a file, never argv).

use crate::sasl::{Mechanism, Scram, ScramCredential, MAX_ITERATIONS, MIN_ITERATIONS};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// One user of the broker's users file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    #[serde(
        rename = "scram-sha-256",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub scram_sha_256: Option<ScramCredential>,
    #[serde(
        rename = "scram-sha-512",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub scram_sha_512: Option<ScramCredential>,
}

impl UserEntry {
    /// Both SCRAM credentials of a password; `salts` are 16 or more random bytes each.
    pub fn from_password(password: &str, salts: [&[u8]; 2], iterations: u32) -> Self {
        UserEntry {
            scram_sha_256: Some(ScramCredential::new(
                Scram::Sha256,
                password,
                salts[0],
                iterations,
            )),
            scram_sha_512: Some(ScramCredential::new(
                Scram::Sha512,
                password,
                salts[1],
                iterations,
            )),
        }
    }

    fn get(&self, scram: Scram) -> Option<&ScramCredential> {
        match scram {
            Scram::Sha256 => self.scram_sha_256.as_ref(),
            Scram::Sha512 => self.scram_sha_512.as_ref(),
        }
    }
}

/// The broker's users (`riptide broker --sasl-users FILE`): TOML, one `[users.NAME.scram-sha-256]`
/// or `[users.NAME.scram-sha-512]` table per credential, as `riptide sasl-user NAME` prints
/// them. SASL/PLAIN checks a password against the user's SCRAM credential, so no password is
/// stored in any form but salted.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Users {
    #[serde(default)]
    pub users: BTreeMap<String, UserEntry>,
}

impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.users.keys()).finish()
    }
}

impl Users {
    pub fn load(path: &Path) -> anyhow::Result<Users> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading SASL users file {}: {e}", path.display()))?;
        Users::from_toml(&text)
            .map_err(|e| anyhow::anyhow!("SASL users file {}: {e}", path.display()))
    }

    pub fn from_toml(text: &str) -> anyhow::Result<Users> {
        let users: Users = toml::from_str(text)?;
        if users.users.is_empty() {
            anyhow::bail!("no users (make entries with `riptide sasl-user NAME`)");
        }
        for (name, entry) in &users.users {
            if entry.scram_sha_256.is_none() && entry.scram_sha_512.is_none() {
                anyhow::bail!("user {name:?} has no credential");
            }
            for cred in [&entry.scram_sha_256, &entry.scram_sha_512]
                .into_iter()
                .flatten()
            {
                if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&cred.iterations) {
                    anyhow::bail!(
                        "user {name:?}: iterations {} outside {MIN_ITERATIONS}..={MAX_ITERATIONS}",
                        cred.iterations
                    );
                }
                for (what, v) in [
                    ("salt", &cred.salt),
                    ("stored_key", &cred.stored_key),
                    ("server_key", &cred.server_key),
                ] {
                    if B64.decode(v).is_err() {
                        anyhow::bail!("user {name:?}: {what} is not base64");
                    }
                }
            }
        }
        Ok(users)
    }

    /// The mechanisms these users can log in with, in the order offered.
    pub fn mechanisms(&self) -> Vec<Mechanism> {
        let has = |s: Scram| self.users.values().any(|u| u.get(s).is_some());
        let mut out = vec![Mechanism::Plain];
        out.extend(
            [Scram::Sha256, Scram::Sha512]
                .into_iter()
                .filter(|&s| has(s))
                .map(Scram::mechanism),
        );
        out
    }

    pub fn scram(&self, user: &str, scram: Scram) -> Option<ScramCredential> {
        self.users.get(user)?.get(scram).cloned()
    }

    /// SASL/PLAIN: whether the password is the user's (checked against a SCRAM credential).
    pub fn check_plain(&self, user: &str, password: &str) -> bool {
        let Some(entry) = self.users.get(user) else {
            return false;
        };
        [Scram::Sha512, Scram::Sha256]
            .into_iter()
            .find_map(|s| entry.get(s).map(|c| c.matches(s, password)))
            .unwrap_or(false)
    }

    /// One user's entry as TOML, to append to a users file.
    pub fn entry_toml(name: &str, entry: &UserEntry) -> String {
        let one = Users {
            users: BTreeMap::from([(name.to_string(), entry.clone())]),
        };
        toml::to_string(&one).unwrap_or_default()
    }
}

/// What a client logs in with. The password never appears in `Debug` or a report.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSasl {
    pub mechanism: Mechanism,
    pub username: String,
    password: String,
}

impl fmt::Debug for ClientSasl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} as {:?}", self.mechanism, self.username)
    }
}

/// The environment variables a client's credentials come from.
pub const USERNAME_ENV: &str = "RIPTIDE_SASL_USERNAME";
pub const PASSWORD_ENV: &str = "RIPTIDE_SASL_PASSWORD";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    username: String,
    password: String,
}

impl ClientSasl {
    pub fn new(mechanism: Mechanism, username: &str, password: &str) -> Self {
        ClientSasl {
            mechanism,
            username: username.to_string(),
            password: password.to_string(),
        }
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    /// From a TOML file (`username = "..."`, `password = "..."`) if given, else from
    /// `RIPTIDE_SASL_USERNAME` and `RIPTIDE_SASL_PASSWORD`.
    pub fn load(
        mechanism: Mechanism,
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<ClientSasl> {
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!("reading SASL credentials file {}: {e}", path.display())
            })?;
            let c: CredentialsFile = toml::from_str(&text).map_err(|e| {
                anyhow::anyhow!(
                    "SASL credentials file {}: {e} (want `username = \"...\"` and \
                     `password = \"...\"`)",
                    path.display()
                )
            })?;
            return Ok(ClientSasl::new(mechanism, &c.username, &c.password));
        }
        match (env(USERNAME_ENV), env(PASSWORD_ENV)) {
            (Some(u), Some(p)) if !u.is_empty() => Ok(ClientSasl::new(mechanism, &u, &p)),
            _ => anyhow::bail!(
                "SASL {mechanism} needs credentials: set {USERNAME_ENV} and {PASSWORD_ENV}, or \
                 give --sasl-credentials FILE (never on the command line)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_users_file_round_trips_and_checks_passwords() {
        let entry =
            UserEntry::from_password("s3cret", [b"0123456789abcdef", b"fedcba9876543210"], 4096);
        let text = Users::entry_toml("alice", &entry);
        assert!(!text.contains("s3cret"), "{text}");
        let users = Users::from_toml(&text).unwrap();
        assert_eq!(users.scram("alice", Scram::Sha512), entry.scram_sha_512);
        assert!(users.check_plain("alice", "s3cret"));
        assert!(!users.check_plain("alice", "s3creT"));
        assert!(!users.check_plain("bob", "s3cret"));
        assert_eq!(
            users.mechanisms(),
            vec![
                Mechanism::Plain,
                Mechanism::ScramSha256,
                Mechanism::ScramSha512
            ]
        );
        assert_eq!(format!("{users:?}"), r#"["alice"]"#);
    }

    #[test]
    fn bad_users_files_are_refused_with_a_reason() {
        for (text, why) in [
            ("", "no users"),
            ("[users.a]\n", "no credential"),
            (
                "[users.a.scram-sha-256]\nsalt='AA=='\niterations=10\nstored_key='AA=='\nserver_key='AA=='\n",
                "iterations",
            ),
            (
                "[users.a.scram-sha-256]\nsalt='!!'\niterations=4096\nstored_key='AA=='\nserver_key='AA=='\n",
                "not base64",
            ),
            ("[users.a.plain]\npassword='x'\n", "unknown field"),
        ] {
            let e = Users::from_toml(text).unwrap_err().to_string();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }

    #[test]
    fn client_credentials_from_env_or_file_and_never_shown() {
        let env = |k: &str| match k {
            USERNAME_ENV => Some("u".to_string()),
            PASSWORD_ENV => Some("hunter2".to_string()),
            _ => None,
        };
        let c = ClientSasl::load(Mechanism::ScramSha512, None, env).unwrap();
        assert_eq!((c.username.as_str(), c.password()), ("u", "hunter2"));
        assert!(!format!("{c:?}").contains("hunter2"));
        let none = ClientSasl::load(Mechanism::Plain, None, |_| None).unwrap_err();
        assert!(none.to_string().contains(PASSWORD_ENV), "{none}");
        let dir = std::env::temp_dir().join(format!("riptide-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("creds.toml");
        std::fs::write(&file, "username = \"f\"\npassword = \"p\"\n").unwrap();
        let c = ClientSasl::load(Mechanism::Plain, Some(&file), |_| None).unwrap();
        assert_eq!((c.username.as_str(), c.password()), ("f", "p"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
