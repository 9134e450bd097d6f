//! The per-rule and per-policy callback tokens, in Secrets their resource owns:
//! stable across restarts and replicas, shared with the gateway, and
//! garbage-collected with the resource.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::api::PostParams;
use kube::{Api, Client, Resource, ResourceExt};
use rand::RngExt;

use crate::api::{ApprovalPolicy, ExceptionRule};
use crate::automation::{TOKEN_KEY, approval_hook_secret_name, hook_secret_name};
use crate::odoo::Secret;

/// The Secret could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum HookTokenError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the resource has no namespace")]
    MissingNamespace,
    #[error("Secret {secret} has no key {TOKEN_KEY:?}; delete it and PlanOps creates a new token")]
    MissingKey { secret: String },
}

/// The rule's token, creating its Secret (owned by the rule) on first use.
/// Several replicas racing here end up with the one token that won.
/// An existing Secret is never changed.
pub async fn hook_token(client: &Client, rule: &ExceptionRule) -> Result<Secret, HookTokenError> {
    let name = hook_secret_name(&rule.name_any());
    owned_token(client, rule, &name, "planops.io/rule").await
}

/// An ApprovalPolicy's token, as [`hook_token`] keeps a rule's.
pub async fn approval_hook_token(
    client: &Client,
    policy: &ApprovalPolicy,
) -> Result<Secret, HookTokenError> {
    let name = approval_hook_secret_name(&policy.name_any());
    owned_token(client, policy, &name, "planops.io/approval-policy").await
}

/// The token in Secret `name`, owned by `owner` (labelled `label=<owner>`).
async fn owned_token<K>(
    client: &Client,
    owner: &K,
    name: &str,
    label: &str,
) -> Result<Secret, HookTokenError>
where
    K: Resource<DynamicType = ()>,
{
    let namespace = owner.namespace().ok_or(HookTokenError::MissingNamespace)?;
    let api: Api<KubeSecret> = Api::namespaced(client.clone(), &namespace);
    let name = name.to_string();
    for _ in 0..3 {
        match api.get_opt(&name).await? {
            Some(secret) => {
                // A Secret without the key was edited by someone: PlanOps may
                // create Secrets but not change existing ones (least privilege).
                return token_of(&secret).ok_or(HookTokenError::MissingKey {
                    secret: format!("{namespace}/{name}"),
                });
            }
            None => {
                let secret = new_secret(owner, &name, label, &new_token());
                match api.create(&PostParams::default(), &secret).await {
                    Ok(created) => {
                        if let Some(token) = token_of(&created) {
                            return Ok(token);
                        }
                    }
                    Err(kube::Error::Api(status)) if status.code == 409 => continue,
                    Err(err) => return Err(err.into()),
                }
            }
        }
    }
    // Lost three races in a row: read whatever won.
    api.get_opt(&name)
        .await?
        .as_ref()
        .and_then(token_of)
        .ok_or_else(|| {
            HookTokenError::Kube(kube::Error::Service(
                format!("Secret {namespace}/{name} keeps changing").into(),
            ))
        })
}

/// The token in Secret `name` of `owner`'s namespace if the operator has
/// created it yet, never creating it: for `planops gateway`, which must not
/// race the leader with a second token.
pub async fn existing_token<K>(
    client: &Client,
    owner: &K,
    name: &str,
) -> Result<Option<Secret>, HookTokenError>
where
    K: Resource<DynamicType = ()>,
{
    let namespace = owner.namespace().ok_or(HookTokenError::MissingNamespace)?;
    let api: Api<KubeSecret> = Api::namespaced(client.clone(), &namespace);
    match api.get_opt(name).await? {
        None => Ok(None),
        Some(secret) => token_of(&secret)
            .map(Some)
            .ok_or(HookTokenError::MissingKey {
                secret: format!("{namespace}/{name}"),
            }),
    }
}

fn token_of(secret: &KubeSecret) -> Option<Secret> {
    let bytes = secret.data.as_ref()?.get(TOKEN_KEY)?;
    let text = std::str::from_utf8(&bytes.0).ok()?.trim();
    (!text.is_empty()).then(|| Secret::new(text))
}

/// 256 random bits, URL-safe: the token travels in a query string.
fn new_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    URL_SAFE_NO_PAD.encode(bytes)
}

fn new_secret<K: Resource<DynamicType = ()>>(
    owner: &K,
    name: &str,
    label: &str,
    token: &str,
) -> KubeSecret {
    let mut secret = KubeSecret::default();
    secret.metadata.name = Some(name.to_string());
    secret.metadata.namespace = owner.namespace();
    secret.metadata.labels = Some(
        [
            ("app.kubernetes.io/managed-by", "planops"),
            (label, owner.name_any().as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.chars().take(63).collect()))
        .collect(),
    );
    // Owned by its resource: deleting the resource garbage-collects the token.
    secret.metadata.owner_references = owner.controller_owner_ref(&()).map(|o| vec![o]);
    secret.type_ = Some("Opaque".into());
    secret.data = Some(
        [(TOKEN_KEY.to_string(), ByteString(token.as_bytes().to_vec()))]
            .into_iter()
            .collect(),
    );
    secret
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_url_safe() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }
}
