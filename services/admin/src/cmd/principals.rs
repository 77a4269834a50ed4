//! `principals create|disable|list`: people and service accounts of an
//! organisation, each with one role (admin, data_owner, reader) and
//! optionally the OIDC subject its bearer tokens carry. A disabled principal
//! can no longer sign in with any key or token.

use clap::{Args, Subcommand};
use hoheit_domain::policy::Role;
use hoheit_domain::Slug;
use hoheit_store::audit::Actor;
use hoheit_store::principals::{self, NewPrincipal, PrincipalKind};
use sqlx::PgPool;

use crate::output::{or_dash, time, Table};
use crate::{AdminError, Output};

#[derive(Debug, Subcommand)]
pub enum PrincipalCommand {
    /// Register a principal (then issue it a key with `keys create NAME`).
    Create(CreateArgs),
    /// Disable a principal: none of its keys or tokens is accepted any more.
    Disable(DisableArgs),
    /// List principals.
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Unique name (a slug), e.g. a login or "verkehr-dashboard".
    #[arg(value_parser = super::principal_name)]
    pub name: Slug,
    /// The organisation the principal belongs to.
    #[arg(long, value_parser = super::org_slug)]
    pub org: Slug,
    /// A person or a service account.
    #[arg(long, value_parser = super::principal_kind(), default_value = "person")]
    pub kind: PrincipalKind,
    /// What the principal may do within its organisation.
    #[arg(long, value_parser = super::role())]
    pub role: Role,
    /// Subject (or mapped claim) of this principal's OIDC tokens.
    #[arg(long)]
    pub oidc_subject: Option<String>,
}

#[derive(Debug, Args)]
pub struct DisableArgs {
    /// The principal's name.
    #[arg(value_parser = super::principal_name)]
    pub name: Slug,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only principals of this organisation.
    #[arg(long, value_parser = super::org_slug)]
    pub org: Option<Slug>,
}

pub async fn run(
    pool: &PgPool,
    command: PrincipalCommand,
    actor: &Actor,
    out: &mut Output<'_>,
) -> Result<(), AdminError> {
    match command {
        PrincipalCommand::Create(args) => {
            if args.oidc_subject.as_deref().is_some_and(|s| s.trim().is_empty() || s.chars().count() > 255) {
                return Err(AdminError::Input("--oidc-subject must be 1 to 255 characters".into()));
            }
            let new = NewPrincipal {
                org: args.org,
                name: args.name,
                kind: args.kind,
                role: args.role,
                oidc_subject: args.oidc_subject,
            };
            let p = principals::create_principal(pool, &new, actor).await?;
            out.show(&p, |out| {
                out.line(format!(
                    "created principal {} ({} {}) of {}, id {}; issue a key with: hoheit-admin keys create {}",
                    p.name, p.role, p.kind, p.org, p.id, p.name
                ))
            })
        }
        PrincipalCommand::Disable(args) => {
            let principal = principals::principal_by_name(pool, &args.name)
                .await?
                .ok_or_else(|| AdminError::Input(format!("principal {} not found", args.name)))?;
            let p = principals::disable(pool, principal.id, actor).await?;
            out.show(&p, |out| {
                out.line(format!(
                    "disabled principal {} of {}: its keys and tokens are refused; run `hoheit-admin mqtt-config` \
                     and reload the broker to end its MQTT access",
                    p.name, p.org
                ))
            })
        }
        PrincipalCommand::List(args) => {
            let list = principals::list_principals(pool, args.org.as_ref()).await?;
            out.show(&list, |out| {
                let mut table = Table::new(&["id", "name", "organisation", "role", "kind", "oidc subject", "created"]);
                for p in &list {
                    table.row([
                        p.id.to_string(),
                        p.name.clone(),
                        p.org.clone(),
                        p.role.to_string(),
                        p.kind.clone(),
                        or_dash(p.oidc_subject.as_ref()),
                        time(p.created_at),
                    ]);
                }
                out.table(&table)
            })
        }
    }
}
