//! Accounts: who may use Academy, and with which role.
//!
//! Two aggregates work together:
//! - [`Account`] (`account-<uuid>`): registration, password changes, the admin role.
//! - [`Claim`] (`email-<uuid>`, `username-<uuid>`): one stream per email address and per username, whose id is a
//!   name-based UUID of the normalised value. Registering appends to the account stream *and* to both claim
//!   streams in one atomic append, each expecting "no stream yet"; so of two racing registrations of one email,
//!   exactly one commits and the other finds the claim taken when it decides again.
//!
//! Passwords never reach the domain: events carry an argon2id hash computed at the edge.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::event::{DecodeError, DomainEvent, decode_tagged, encode_tagged};
use crate::{Decider, StreamId, Timestamp};

/// Namespace of the name-based ids of claim streams (a fixed random UUID: changing it would orphan every claim).
const CLAIM_NAMESPACE: Uuid = Uuid::from_u128(0x5c1e_7a0d_4f6b_4d3e_9a51_2b8c_e0f4_a7d2);

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "user" => Some(Role::User),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an email, username or password was refused at the edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("an email address looks like name@example.org (at most 254 characters, no spaces)")]
    Email,
    #[error(
        "a username has 3 to 32 characters: letters a-z, digits, '_', '-' or '.', starting with a letter or digit"
    )]
    Username,
    #[error("a password has 8 to 256 characters")]
    Password,
}

/// An email address, trimmed and lowercased (addresses are compared case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, CredentialError> {
        let email = raw.trim().to_lowercase();
        let (local, domain) = email.split_once('@').ok_or(CredentialError::Email)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && !domain.contains('@');
        let chars_ok = !email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';'));
        if local.is_empty() || !domain_ok || !chars_ok || email.len() > 254 {
            return Err(CredentialError::Email);
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A username, lowercased (usernames are compared case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, CredentialError> {
        let name = raw.trim().to_lowercase();
        let length_ok = (3..=32).contains(&name.len());
        let first_ok = name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let chars_ok = name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
        });
        if !length_ok || !first_ok || !chars_ok {
            return Err(CredentialError::Username);
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks a new password's length (its strength beyond that is the user's business; it is hashed at the edge).
pub fn check_password(password: &str) -> Result<(), CredentialError> {
    let chars = password.chars().count();
    if (8..=256).contains(&chars) {
        Ok(())
    } else {
        Err(CredentialError::Password)
    }
}

/// The stream of an account.
pub fn account_stream(account_id: Uuid) -> StreamId {
    StreamId::new("account", account_id).expect("'account' is a valid category")
}

/// The claim stream of an email address.
pub fn email_claim_stream(email: &Email) -> StreamId {
    claim_stream("email", email.as_str())
}

/// The claim stream of a username.
pub fn username_claim_stream(username: &Username) -> StreamId {
    claim_stream("username", username.as_str())
}

fn claim_stream(category: &str, value: &str) -> StreamId {
    let id = Uuid::new_v5(&CLAIM_NAMESPACE, format!("{category}:{value}").as_bytes());
    StreamId::new(category, id).expect("claim categories are valid")
}

// ---------------------------------------------------------------------------------------------------------------
// Account

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountCommand {
    Register {
        email: Email,
        username: Username,
        password_hash: String,
        role: Role,
        at: Timestamp,
    },
    ChangePassword {
        password_hash: String,
        at: Timestamp,
    },
    GrantAdmin {
        by: Uuid,
        at: Timestamp,
    },
    RevokeAdmin {
        /// The account whose role is revoked (its state does not hold its own id).
        account: Uuid,
        by: Uuid,
        at: Timestamp,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum AccountEvent {
    AccountRegistered {
        email: Email,
        username: Username,
        password_hash: String,
        role: Role,
        at: Timestamp,
    },
    PasswordChanged {
        password_hash: String,
        at: Timestamp,
    },
    AdminGranted {
        by: Uuid,
        at: Timestamp,
    },
    AdminRevoked {
        by: Uuid,
        at: Timestamp,
    },
}

const ACCOUNT_EVENTS: &[&str] = &[
    "AccountRegistered",
    "PasswordChanged",
    "AdminGranted",
    "AdminRevoked",
];

impl DomainEvent for AccountEvent {
    fn event_type(&self) -> &'static str {
        match self {
            AccountEvent::AccountRegistered { .. } => "AccountRegistered",
            AccountEvent::PasswordChanged { .. } => "PasswordChanged",
            AccountEvent::AdminGranted { .. } => "AdminGranted",
            AccountEvent::AdminRevoked { .. } => "AdminRevoked",
        }
    }

    fn encode(&self) -> serde_json::Value {
        encode_tagged(self)
    }

    fn decode(
        event_type: &str,
        schema_version: i32,
        data: serde_json::Value,
    ) -> Result<Self, DecodeError> {
        decode_tagged(ACCOUNT_EVENTS, event_type, schema_version, data)
    }
}

impl AccountEvent {
    /// Every type string of this enum, for projections that subscribe to accounts.
    pub const TYPES: &'static [&'static str] = ACCOUNT_EVENTS;
}

/// An account as its stream tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountState {
    pub email: Email,
    pub username: Username,
    pub password_hash: String,
    pub role: Role,
    pub password_changed_at: Timestamp,
    /// How many times the password was changed: tokens carry the number they were issued under, and one
    /// issued before the latest change no longer matches.
    pub password_changes: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("this account is already registered")]
    AlreadyRegistered,
    #[error("no such account")]
    NotRegistered,
    #[error("an admin cannot revoke their own admin role (ask another admin)")]
    CannotRevokeOwnAdmin,
}

pub struct Account;

impl Decider for Account {
    type Command = AccountCommand;
    type Event = AccountEvent;
    type State = Option<AccountState>;
    type Error = AccountError;

    fn initial_state() -> Self::State {
        None
    }

    fn decide(
        command: &AccountCommand,
        state: &Self::State,
    ) -> Result<Vec<AccountEvent>, AccountError> {
        match (command, state) {
            (
                AccountCommand::Register {
                    email,
                    username,
                    password_hash,
                    role,
                    at,
                },
                None,
            ) => Ok(vec![AccountEvent::AccountRegistered {
                email: email.clone(),
                username: username.clone(),
                password_hash: password_hash.clone(),
                role: *role,
                at: *at,
            }]),
            (AccountCommand::Register { .. }, Some(_)) => Err(AccountError::AlreadyRegistered),
            (_, None) => Err(AccountError::NotRegistered),
            (AccountCommand::ChangePassword { password_hash, at }, Some(_)) => {
                Ok(vec![AccountEvent::PasswordChanged {
                    password_hash: password_hash.clone(),
                    at: *at,
                }])
            }
            (AccountCommand::GrantAdmin { .. }, Some(account)) if account.role == Role::Admin => {
                Ok(vec![])
            }
            (AccountCommand::GrantAdmin { by, at }, Some(_)) => {
                Ok(vec![AccountEvent::AdminGranted { by: *by, at: *at }])
            }
            (AccountCommand::RevokeAdmin { .. }, Some(account)) if account.role == Role::User => {
                Ok(vec![])
            }
            (AccountCommand::RevokeAdmin { account, by, .. }, Some(_)) if account == by => {
                Err(AccountError::CannotRevokeOwnAdmin)
            }
            (AccountCommand::RevokeAdmin { by, at, .. }, Some(_)) => {
                Ok(vec![AccountEvent::AdminRevoked { by: *by, at: *at }])
            }
        }
    }

    fn evolve(state: Self::State, event: &AccountEvent) -> Self::State {
        match (event, state) {
            (
                AccountEvent::AccountRegistered {
                    email,
                    username,
                    password_hash,
                    role,
                    at,
                },
                _,
            ) => Some(AccountState {
                email: email.clone(),
                username: username.clone(),
                password_hash: password_hash.clone(),
                role: *role,
                password_changed_at: *at,
                password_changes: 0,
            }),
            (AccountEvent::PasswordChanged { password_hash, at }, Some(account)) => {
                Some(AccountState {
                    password_hash: password_hash.clone(),
                    password_changed_at: *at,
                    password_changes: account.password_changes.saturating_add(1),
                    ..account
                })
            }
            (AccountEvent::AdminGranted { .. }, Some(account)) => Some(AccountState {
                role: Role::Admin,
                ..account
            }),
            (AccountEvent::AdminRevoked { .. }, Some(account)) => Some(AccountState {
                role: Role::User,
                ..account
            }),
            (_, None) => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Claim

/// Claims an email address or username for an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimCommand {
    pub account_id: Uuid,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ClaimEvent {
    /// `value` (an email address or a username) now belongs to `account_id`.
    IdentifierClaimed { account_id: Uuid, value: String },
}

impl DomainEvent for ClaimEvent {
    fn event_type(&self) -> &'static str {
        "IdentifierClaimed"
    }

    fn encode(&self) -> serde_json::Value {
        encode_tagged(self)
    }

    fn decode(
        event_type: &str,
        schema_version: i32,
        data: serde_json::Value,
    ) -> Result<Self, DecodeError> {
        decode_tagged(&["IdentifierClaimed"], event_type, schema_version, data)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("{0} is already taken")]
    Taken(String),
}

pub struct Claim;

impl Decider for Claim {
    type Command = ClaimCommand;
    type Event = ClaimEvent;
    /// The account holding the claim.
    type State = Option<Uuid>;
    type Error = ClaimError;

    fn initial_state() -> Self::State {
        None
    }

    fn decide(command: &ClaimCommand, state: &Option<Uuid>) -> Result<Vec<ClaimEvent>, ClaimError> {
        match state {
            None => Ok(vec![ClaimEvent::IdentifierClaimed {
                account_id: command.account_id,
                value: command.value.clone(),
            }]),
            Some(owner) if *owner == command.account_id => Ok(vec![]),
            Some(_) => Err(ClaimError::Taken(command.value.clone())),
        }
    }

    fn evolve(state: Option<Uuid>, event: &ClaimEvent) -> Option<Uuid> {
        match event {
            ClaimEvent::IdentifierClaimed { account_id, .. } => state.or(Some(*account_id)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{at, given};

    fn email() -> Email {
        Email::parse("Ada@Example.org").unwrap()
    }

    fn username() -> Username {
        Username::parse("ada").unwrap()
    }

    fn registered() -> AccountEvent {
        AccountEvent::AccountRegistered {
            email: email(),
            username: username(),
            password_hash: "h1".into(),
            role: Role::User,
            at: at(100),
        }
    }

    #[test]
    fn a_new_account_is_registered() {
        given::<Account>([])
            .when(AccountCommand::Register {
                email: email(),
                username: username(),
                password_hash: "h1".into(),
                role: Role::User,
                at: at(100),
            })
            .then([registered()]);
    }

    #[test]
    fn an_account_cannot_be_registered_twice() {
        given::<Account>([registered()])
            .when(AccountCommand::Register {
                email: email(),
                username: username(),
                password_hash: "h2".into(),
                role: Role::User,
                at: at(200),
            })
            .then_err(AccountError::AlreadyRegistered);
    }

    #[test]
    fn a_password_change_records_the_new_hash_and_when() {
        given::<Account>([registered()])
            .when(AccountCommand::ChangePassword {
                password_hash: "h2".into(),
                at: at(300),
            })
            .then([AccountEvent::PasswordChanged {
                password_hash: "h2".into(),
                at: at(300),
            }]);
    }

    #[test]
    fn nothing_can_happen_to_an_account_that_was_never_registered() {
        given::<Account>([])
            .when(AccountCommand::GrantAdmin {
                by: Uuid::nil(),
                at: at(1),
            })
            .then_err(AccountError::NotRegistered);
    }

    #[test]
    fn granting_admin_to_an_admin_changes_nothing() {
        let by = Uuid::from_u128(7);
        given::<Account>([registered(), AccountEvent::AdminGranted { by, at: at(2) }])
            .when(AccountCommand::GrantAdmin { by, at: at(3) })
            .then([]);
    }

    #[test]
    fn an_admin_role_can_be_granted_and_revoked() {
        let by = Uuid::from_u128(7);
        given::<Account>([registered()])
            .when(AccountCommand::GrantAdmin { by, at: at(2) })
            .then([AccountEvent::AdminGranted { by, at: at(2) }]);
        let account = Uuid::from_u128(8);
        given::<Account>([registered(), AccountEvent::AdminGranted { by, at: at(2) }])
            .when(AccountCommand::RevokeAdmin {
                account,
                by,
                at: at(3),
            })
            .then([AccountEvent::AdminRevoked { by, at: at(3) }]);
        given::<Account>([registered()])
            .when(AccountCommand::RevokeAdmin {
                account,
                by,
                at: at(3),
            })
            .then([]);
    }

    #[test]
    fn an_admin_cannot_revoke_their_own_role() {
        let me = Uuid::from_u128(1);
        given::<Account>([
            registered(),
            AccountEvent::AdminGranted { by: me, at: at(2) },
        ])
        .when(AccountCommand::RevokeAdmin {
            account: me,
            by: me,
            at: at(3),
        })
        .then_err(AccountError::CannotRevokeOwnAdmin);
    }

    #[test]
    fn a_free_identifier_is_claimed_and_a_taken_one_is_refused() {
        let ada = Uuid::from_u128(1);
        let bob = Uuid::from_u128(2);
        let claimed = ClaimEvent::IdentifierClaimed {
            account_id: ada,
            value: "ada".into(),
        };
        given::<Claim>([])
            .when(ClaimCommand {
                account_id: ada,
                value: "ada".into(),
            })
            .then([claimed.clone()]);
        given::<Claim>([claimed.clone()])
            .when(ClaimCommand {
                account_id: ada,
                value: "ada".into(),
            })
            .then([]);
        given::<Claim>([claimed])
            .when(ClaimCommand {
                account_id: bob,
                value: "ada".into(),
            })
            .then_err(ClaimError::Taken("ada".into()));
    }

    #[test]
    fn emails_and_usernames_are_normalised_and_validated() {
        assert_eq!(email().as_str(), "ada@example.org");
        assert_eq!(Username::parse(" Ada_L ").unwrap().as_str(), "ada_l");
        for bad in [
            "",
            "ada",
            "@x.org",
            "ada@",
            "ada@x",
            "a b@x.org",
            "ada@.org",
            "ada@x..org",
        ] {
            assert_eq!(Email::parse(bad), Err(CredentialError::Email), "{bad:?}");
        }
        for bad in ["ab", "_ada", "ada lovelace", "ädä", &"a".repeat(33)] {
            assert_eq!(
                Username::parse(bad),
                Err(CredentialError::Username),
                "{bad:?}"
            );
        }
        assert!(check_password("1234567").is_err());
        assert!(check_password("12345678").is_ok());
    }

    #[test]
    fn claim_streams_depend_only_on_the_normalised_value() {
        let a = email_claim_stream(&Email::parse("ADA@example.org").unwrap());
        let b = email_claim_stream(&Email::parse("ada@example.org ").unwrap());
        assert_eq!(a, b);
        assert_eq!(a.category(), "email");
    }
}
