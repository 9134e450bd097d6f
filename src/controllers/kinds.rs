//! What the shared reconcile driver needs to know about each PlanOps kind.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::common::{DeletionPolicy, SecretKeyRef, StatusCore};
use crate::api::{
    ApprovalPolicy, ApprovalPolicyStatus, ExceptionRule, ExceptionRuleStatus, OdooConnection,
    OdooConnectionStatus, SupplierConnector, SupplierConnectorStatus,
};
use crate::gateway::SecretUse;

/// A PlanOps kind's status: its own fields around the shared [`StatusCore`].
pub trait CommonStatus: Clone + Debug + Default + PartialEq + Serialize + Send + Sync {
    fn core(&self) -> &StatusCore;
    fn core_mut(&mut self) -> &mut StatusCore;
}

/// A PlanOps resource kind.
pub trait PlanopsKind:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    type Status: CommonStatus;
    const KIND: &'static str;
    fn status(&self) -> Option<&Self::Status>;
    fn suspended(&self) -> bool;
    fn deletion_policy(&self) -> DeletionPolicy;
    /// The `OdooConnection` this resource uses, if any.
    fn connection_name(&self) -> Option<&str>;
    /// The OdooConnection whose shard this object belongs to (see
    /// [`super::shards`]): the one it uses, or a connection's own name, so a
    /// connection and everything that uses it are held by one replica.
    fn shard_connection(&self) -> Option<&str> {
        self.connection_name()
    }
    /// Every Secret key the spec names, with the field path that names it.
    fn secret_refs(&self) -> Vec<(String, SecretKeyRef)>;
    /// Whether a change to the Secret `name` (in the object's namespace)
    /// concerns this object: one its spec names, or one PlanOps keeps for it.
    fn uses_secret(&self, name: &str) -> bool {
        self.secret_refs().iter().any(|(_, r)| r.name == name)
    }
}

/// What the Secret key named at `field` (a field of
/// [`PlanopsKind::secret_refs`]) is used as, when its value must have a form:
/// the signing secrets and tokens a webhook or notification is checked with.
pub fn secret_use(field: &str) -> Option<SecretUse> {
    if field.starts_with("spec.inbound.webhook.auth.standardWebhooks.secretRefs[")
        || (field.starts_with("spec.actions[") && field.ends_with("].notify.signingSecretRef"))
    {
        Some(SecretUse::StandardWebhooks)
    } else if field == "spec.inbound.webhook.auth.hmacSha256.secretRef" {
        Some(SecretUse::Hmac)
    } else if field == "spec.inbound.webhook.auth.bearer.secretRef" {
        Some(SecretUse::Token)
    } else {
        None
    }
}

macro_rules! common_status {
    ($status:ty) => {
        impl CommonStatus for $status {
            fn core(&self) -> &StatusCore {
                &self.core
            }
            fn core_mut(&mut self) -> &mut StatusCore {
                &mut self.core
            }
        }
    };
}

/// The accessors that read the same fields on every kind: `status`,
/// `spec.suspend` and `spec.deletionPolicy`.
macro_rules! gitops_controls {
    () => {
        fn status(&self) -> Option<&Self::Status> {
            self.status.as_ref()
        }
        fn suspended(&self) -> bool {
            self.spec.suspend.unwrap_or(false)
        }
        fn deletion_policy(&self) -> DeletionPolicy {
            self.spec.deletion_policy.unwrap_or_default()
        }
    };
}

common_status!(OdooConnectionStatus);
common_status!(ExceptionRuleStatus);
common_status!(SupplierConnectorStatus);
common_status!(ApprovalPolicyStatus);

impl PlanopsKind for OdooConnection {
    type Status = OdooConnectionStatus;
    const KIND: &'static str = "OdooConnection";
    gitops_controls!();
    fn connection_name(&self) -> Option<&str> {
        None
    }
    fn shard_connection(&self) -> Option<&str> {
        self.metadata.name.as_deref()
    }
    fn secret_refs(&self) -> Vec<(String, SecretKeyRef)> {
        let creds = &self.spec.credentials_secret_ref;
        vec![
            (
                "spec.credentialsSecretRef.loginKey".into(),
                SecretKeyRef {
                    name: creds.name.clone(),
                    key: creds.login_key().into(),
                },
            ),
            (
                "spec.credentialsSecretRef.apiKeyKey".into(),
                SecretKeyRef {
                    name: creds.name.clone(),
                    key: creds.api_key_key().into(),
                },
            ),
        ]
    }
}

impl PlanopsKind for ExceptionRule {
    type Status = ExceptionRuleStatus;
    const KIND: &'static str = "ExceptionRule";
    gitops_controls!();
    fn connection_name(&self) -> Option<&str> {
        Some(&self.spec.connection_ref.name)
    }
    fn secret_refs(&self) -> Vec<(String, SecretKeyRef)> {
        let mut refs = Vec::new();
        for (i, action) in self.spec.actions.iter().enumerate() {
            if let Some(notify) = &action.notify {
                refs.push((
                    format!("spec.actions[{i}].notify.urlSecretRef"),
                    notify.url_secret_ref.clone(),
                ));
                if let Some(signing) = &notify.signing_secret_ref {
                    refs.push((
                        format!("spec.actions[{i}].notify.signingSecretRef"),
                        signing.clone(),
                    ));
                }
            }
        }
        refs
    }
    /// Also the callback token's Secret: deleting it makes a new token, which
    /// the Odoo automation and the route must follow.
    fn uses_secret(&self, name: &str) -> bool {
        self.secret_refs().iter().any(|(_, r)| r.name == name)
            || (self.spec.triggers.events.is_some()
                && crate::automation::hook_secret_name(&kube::ResourceExt::name_any(self)) == name)
    }
}

impl PlanopsKind for SupplierConnector {
    type Status = SupplierConnectorStatus;
    const KIND: &'static str = "SupplierConnector";
    gitops_controls!();
    fn connection_name(&self) -> Option<&str> {
        Some(&self.spec.connection_ref.name)
    }
    fn secret_refs(&self) -> Vec<(String, SecretKeyRef)> {
        let mut refs = Vec::new();
        if let Some(webhook) = &self.spec.inbound.webhook {
            let auth = &webhook.auth;
            if let Some(sw) = &auth.standard_webhooks {
                for (i, r) in sw.secret_refs.iter().enumerate() {
                    refs.push((
                        format!("spec.inbound.webhook.auth.standardWebhooks.secretRefs[{i}]"),
                        r.clone(),
                    ));
                }
            }
            if let Some(h) = &auth.hmac_sha256 {
                refs.push((
                    "spec.inbound.webhook.auth.hmacSha256.secretRef".into(),
                    h.secret_ref.clone(),
                ));
            }
            if let Some(b) = &auth.bearer {
                refs.push((
                    "spec.inbound.webhook.auth.bearer.secretRef".into(),
                    b.secret_ref.clone(),
                ));
            }
        }
        if let Some(poll) = &self.spec.inbound.poll {
            if let Some(r) = &poll.bearer_token_ref {
                refs.push(("spec.inbound.poll.bearerTokenRef".into(), r.clone()));
            }
            if let Some(h) = &poll.header_auth {
                refs.push((
                    "spec.inbound.poll.headerAuth.secretRef".into(),
                    h.secret_ref.clone(),
                ));
            }
        }
        refs
    }
}

impl PlanopsKind for ApprovalPolicy {
    type Status = ApprovalPolicyStatus;
    const KIND: &'static str = "ApprovalPolicy";
    gitops_controls!();
    fn connection_name(&self) -> Option<&str> {
        Some(&self.spec.connection_ref.name)
    }
    fn secret_refs(&self) -> Vec<(String, SecretKeyRef)> {
        Vec::new()
    }
    /// The callback token's Secret (see `ExceptionRule`).
    fn uses_secret(&self, name: &str) -> bool {
        crate::automation::approval_hook_secret_name(&kube::ResourceExt::name_any(self)) == name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `secret_use` reads the field paths `secret_refs` writes: both must move together.
    #[test]
    fn every_signing_secret_and_token_field_has_its_use() {
        let supplier: SupplierConnector = serde_json::from_value(serde_json::json!({
            "apiVersion": "planops.io/v1alpha1", "kind": "SupplierConnector",
            "metadata": {"name": "s"},
            "spec": {
                "connectionRef": {"name": "odoo"},
                "supplier": {"name": "Acme"},
                "inbound": {
                    "webhook": {"auth": {
                        "standardWebhooks": {"secretRefs": [{"name": "a", "key": "k"}, {"name": "b", "key": "k"}]},
                        "hmacSha256": {"secretRef": {"name": "h", "key": "k"}},
                        "bearer": {"secretRef": {"name": "t", "key": "k"}},
                    }},
                    "poll": {"url": "https://x.example", "bearerTokenRef": {"name": "p", "key": "k"}},
                },
                "mapping": {"eventType": "$.t", "purchaseOrderRef": "$.po"},
            },
        }))
        .unwrap();
        let uses: Vec<(String, Option<SecretUse>)> = supplier
            .secret_refs()
            .into_iter()
            .map(|(field, r)| (r.name, secret_use(&field)))
            .collect();
        assert_eq!(
            uses,
            [
                ("a".to_string(), Some(SecretUse::StandardWebhooks)),
                ("b".to_string(), Some(SecretUse::StandardWebhooks)),
                ("h".to_string(), Some(SecretUse::Hmac)),
                ("t".to_string(), Some(SecretUse::Token)),
                // A supplier's own API key: its length is the supplier's business.
                ("p".to_string(), None),
            ]
        );
        let rule: ExceptionRule = serde_json::from_value(serde_json::json!({
            "apiVersion": "planops.io/v1alpha1", "kind": "ExceptionRule",
            "metadata": {"name": "r"},
            "spec": {
                "connectionRef": {"name": "odoo"},
                "detector": {"demandSpike": {}},
                "triggers": {"schedule": {"cron": "0 6 * * *"}},
                "actions": [{"activity": {"assignee": {"user": "admin"}}},
                            {"notify": {"urlSecretRef": {"name": "u", "key": "url"},
                                        "signingSecretRef": {"name": "s", "key": "secret"}}}],
            },
        }))
        .unwrap();
        let uses: Vec<(String, Option<SecretUse>)> = rule
            .secret_refs()
            .into_iter()
            .map(|(field, r)| (r.name, secret_use(&field)))
            .collect();
        assert_eq!(
            uses,
            [
                ("u".to_string(), None),
                ("s".to_string(), Some(SecretUse::StandardWebhooks)),
            ]
        );
    }
}
