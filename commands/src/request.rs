//! Who asks for a use case, through which adapter, when, and under which idempotency key.
//!
//! Every application service takes a [`Request`]: the GraphQL API, the REST routes, the CLI, the workers and the
//! Telegram bot build one and call the same method, so none of them decides command ids or metadata itself.

use chrono::{DateTime, Utc};
use domain::Timestamp;
use domain::identity::Role;
use eventlog::{Metadata, Source};
use uuid::Uuid;

/// Namespace of command ids derived from a client's idempotency key (kept stable: stored command ids depend on
/// it, so a client retrying across an upgrade still gets its first result).
const COMMAND_NAMESPACE: Uuid = Uuid::from_u128(0x7b3e_94c1_0d2a_4f68_b5e9_3c71_a0d4_6e25);

/// What kind of actor acted, as an event's metadata records it (`actor_role`, by [`ActorRole::as_str`]): the
/// kind of [`Actor`], with a signed-in user's [`Role`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActorRole {
    Anonymous,
    /// A signed-in user who is not an admin.
    User,
    /// A signed-in admin.
    Admin,
    /// A worker acting on time or on the outside world.
    Worker,
    /// Academy itself.
    System,
}

impl ActorRole {
    pub const ALL: [ActorRole; 5] = [
        ActorRole::Anonymous,
        ActorRole::User,
        ActorRole::Admin,
        ActorRole::Worker,
        ActorRole::System,
    ];

    /// The stable name of the role, as the log's metadata records it (a user's is their [`Role::as_str`]).
    pub fn as_str(self) -> &'static str {
        match self {
            ActorRole::Anonymous => "anonymous",
            ActorRole::User => Role::User.as_str(),
            ActorRole::Admin => Role::Admin.as_str(),
            ActorRole::Worker => "worker",
            ActorRole::System => "system",
        }
    }

    /// The role [`ActorRole::as_str`] names.
    pub fn parse(recorded: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == recorded)
    }
}

impl From<Role> for ActorRole {
    fn from(role: Role) -> Self {
        match role {
            Role::User => ActorRole::User,
            Role::Admin => ActorRole::Admin,
        }
    }
}

/// Who acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Anonymous,
    User {
        id: Uuid,
        role: Role,
    },
    /// A worker acting on time or on the outside world (the deadline worker, the scraper).
    Worker {
        name: &'static str,
    },
    /// Academy itself (the start-up bootstrap of an admin).
    System {
        name: &'static str,
    },
}

impl Actor {
    /// The signed-in user's id, if a user acts.
    pub fn user(&self) -> Option<Uuid> {
        match self {
            Actor::User { id, .. } => Some(*id),
            _ => None,
        }
    }

    /// Whether a signed-in admin acts.
    pub fn is_admin(&self) -> bool {
        matches!(
            self,
            Actor::User {
                role: Role::Admin,
                ..
            }
        )
    }

    /// The kind of actor, as the metadata records it.
    pub fn role(&self) -> ActorRole {
        match self {
            Actor::Anonymous => ActorRole::Anonymous,
            Actor::User { role, .. } => ActorRole::from(*role),
            Actor::Worker { .. } => ActorRole::Worker,
            Actor::System { .. } => ActorRole::System,
        }
    }

    /// The actor id and role the metadata records.
    fn recorded(&self) -> (String, &'static str) {
        let id = match self {
            Actor::Anonymous => ActorRole::Anonymous.as_str().to_owned(),
            Actor::User { id, .. } => id.to_string(),
            Actor::Worker { name } | Actor::System { name } => (*name).to_owned(),
        };
        (id, self.role().as_str())
    }
}

/// One call of a use case.
#[derive(Debug, Clone)]
pub struct Request {
    pub actor: Actor,
    pub source: Source,
    /// The client's idempotency key: the same key for the same operation on the same input names the same
    /// command, whose first result every retry gets. `None`: a fresh command.
    pub key: Option<Uuid>,
    /// When the request is made (from the adapter's clock), to the second, as commands carry it.
    pub at: Timestamp,
}

impl Request {
    pub fn new(actor: Actor, source: Source, at: DateTime<Utc>) -> Self {
        Self {
            actor,
            source,
            key: None,
            at: at.into(),
        }
    }

    pub fn key(mut self, key: Option<Uuid>) -> Self {
        self.key = key;
        self
    }

    /// The signed-in user who asks.
    pub fn user(&self) -> Result<Uuid, crate::Denied> {
        self.actor.user().ok_or(crate::Denied::SignInRequired)
    }

    /// The signed-in admin who asks.
    pub fn admin(&self) -> Result<Uuid, crate::Denied> {
        let id = self.user()?;
        if self.actor.is_admin() {
            Ok(id)
        } else {
            Err(crate::Denied::AdminOnly)
        }
    }

    /// The command id of `operation` on `input`: the client's key scoped to the operation, the actor and the
    /// input, so a key reused for another operation, by another user or on other input is another command.
    /// A request without a key gets a fresh id.
    pub fn command_id(&self, operation: &str, input: &[&str]) -> Uuid {
        let Some(key) = self.key else {
            return Uuid::now_v7();
        };
        let (actor, _) = self.actor.recorded();
        let mut name = format!("{operation}\u{0}{actor}\u{0}{key}");
        for part in input {
            name.push('\u{0}');
            name.push_str(part);
        }
        Uuid::new_v5(&COMMAND_NAMESPACE, name.as_bytes())
    }

    /// The metadata of the command `operation` on `input`.
    pub fn metadata(&self, operation: &str, input: &[&str]) -> Metadata {
        self.metadata_with_id(self.command_id(operation, input))
    }

    /// The metadata of a command whose id the service derives itself (a worker's timer, a bootstrap).
    pub fn metadata_with_id(&self, command_id: Uuid) -> Metadata {
        let (id, role) = self.actor.recorded();
        Metadata::new(self.source)
            .actor(id, role)
            .command_id(command_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actor_roles_are_recorded_by_one_stable_name_each() {
        for role in ActorRole::ALL {
            assert_eq!(ActorRole::parse(role.as_str()), Some(role));
        }
        assert_eq!(ActorRole::parse("nonsense"), None);
        assert_eq!(ActorRole::parse(""), None);
        // the log holds these strings: renaming one changes what old events say
        assert_eq!(
            ActorRole::ALL.map(ActorRole::as_str),
            ["anonymous", "user", "admin", "worker", "system"]
        );
        let id = Uuid::nil();
        let recorded = |actor: Actor| actor.recorded();
        assert_eq!(
            recorded(Actor::Anonymous),
            ("anonymous".to_owned(), "anonymous")
        );
        assert_eq!(
            recorded(Actor::User {
                id,
                role: Role::Admin
            }),
            (id.to_string(), "admin")
        );
        assert_eq!(
            recorded(Actor::User {
                id,
                role: Role::User
            }),
            (id.to_string(), "user")
        );
        assert_eq!(
            recorded(Actor::Worker { name: "deadlines" }),
            ("deadlines".to_owned(), "worker")
        );
        assert_eq!(
            recorded(Actor::System { name: "bootstrap" }),
            ("bootstrap".to_owned(), "system")
        );
    }
}
