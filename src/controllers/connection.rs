//! OdooConnection: reads the credentials, probes the server and keeps one
//! client per connection so every rule using it shares its rate limiter.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::{Api, ResourceExt};
use sha2::{Digest, Sha256};

use super::driver::{KindContext, Reconciler, settle};
use super::validate::FieldError;
use super::{Core, Error};
use crate::api::OdooConnection;
use crate::api::common::{ConditionSet, ConditionStatus, condition_types as ct, reasons};
use crate::api::connection::{OdooConnectionStatus, OdooEdition, OdooProtocol};
use crate::odoo::{
    Edition, ErrorKind, OdooClient, OdooConfig, OdooError, Protocol, RateLimitConfig, RetryConfig,
    Secret,
};

/// Longest wait between probes of an unreachable server.
const MAX_UNREACHABLE_BACKOFF: Duration = Duration::from_secs(60);
const FIRST_UNREACHABLE_BACKOFF: Duration = Duration::from_secs(5);

struct Entry {
    config_digest: [u8; 32],
    client: Option<OdooClient>,
    consecutive_failures: u32,
}

/// One Odoo client per `OdooConnection`, rebuilt when its spec or credentials change.
#[derive(Default)]
pub struct OdooClients {
    entries: Mutex<HashMap<(String, String), Entry>>,
}

impl OdooClients {
    /// The connected client of `namespace/name`, if its last probe succeeded.
    pub fn get(&self, namespace: &str, name: &str) -> Option<OdooClient> {
        self.lock()
            .get(&(namespace.to_string(), name.to_string()))
            .and_then(|e| e.client.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn forget(&self, namespace: &str, name: &str) {
        self.lock()
            .remove(&(namespace.to_string(), name.to_string()));
    }
}

/// What the OdooConnection reconciler uses: it probes the servers and keeps
/// the clients every other kind reads.
pub struct ConnectionContext {
    pub core: Arc<Core>,
    pub odoo: Arc<OdooClients>,
}

impl KindContext for ConnectionContext {
    fn core(&self) -> &Core {
        &self.core
    }
}

/// Builds the client configuration from the spec and the Secret's values.
pub fn client_config(
    spec: &crate::api::OdooConnectionSpec,
    login: &str,
    api_key: &str,
) -> OdooConfig {
    let mut config = OdooConfig::new(&spec.url, &spec.database, login, Secret::new(api_key));
    config.protocol = match spec.protocol {
        OdooProtocol::Auto => Protocol::Auto,
        OdooProtocol::JsonRpc => Protocol::JsonRpc,
        OdooProtocol::Json2 => Protocol::Json2,
    };
    config.timeout = Duration::from_secs(u64::from(spec.timeout_seconds.unwrap_or(30)));
    let defaults = RateLimitConfig::default();
    if let Some(rate) = &spec.rate_limit {
        config.rate_limit = RateLimitConfig {
            rps: rate.requests_per_second.unwrap_or(defaults.rps),
            burst: rate.burst.unwrap_or(defaults.burst),
            max_concurrent: rate.max_concurrent.unwrap_or(defaults.max_concurrent),
            calls_per_minute: rate.calls_per_minute,
        };
    }
    let retry_defaults = RetryConfig::default();
    if let Some(retry) = &spec.retry {
        config.retry = RetryConfig {
            max_attempts: retry.max_attempts.unwrap_or(retry_defaults.max_attempts),
            initial_backoff: retry
                .initial_backoff_millis
                .map(|ms| Duration::from_millis(u64::from(ms)))
                .unwrap_or(retry_defaults.initial_backoff),
            max_backoff: retry
                .max_backoff_millis
                .map(|ms| Duration::from_millis(u64::from(ms)))
                .unwrap_or(retry_defaults.max_backoff),
            budget: retry
                .budget_seconds
                .map(|s| Duration::from_secs(u64::from(s)))
                .unwrap_or(retry_defaults.budget),
        };
    }
    config
}

/// A digest of everything that shapes the client, so a change rebuilds it.
/// The API key enters only through the hash.
fn config_digest(spec: &crate::api::OdooConnectionSpec, login: &str, api_key: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(spec).unwrap_or_default());
    hasher.update([0]);
    hasher.update(login.as_bytes());
    hasher.update([0]);
    hasher.update(api_key.as_bytes());
    hasher.finalize().into()
}

/// Reads the login and API key from the Secret the spec names.
async fn read_credentials(
    core: &Core,
    namespace: &str,
    obj: &OdooConnection,
) -> Result<Option<(String, String)>, Error> {
    let secrets: Api<KubeSecret> = Api::namespaced(core.client.clone(), namespace);
    core.api_limiter.until_ready().await;
    let Some(secret) = secrets
        .get_opt(&obj.spec.credentials_secret_ref.name)
        .await
        .map_err(Error::Kube)?
    else {
        return Ok(None);
    };
    Ok(credentials_in(&secret, &obj.spec.credentials_secret_ref).ok())
}

/// The login and API key a connection's Secret holds, or the first key it
/// lacks. Values are trimmed: a key pasted with its newline still works.
pub fn credentials_in<'a>(
    secret: &KubeSecret,
    creds: &'a crate::api::connection::CredentialsSecretRef,
) -> Result<(String, String), &'a str> {
    let value = |key: &str| -> Option<String> {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| String::from_utf8_lossy(&b.0).trim().to_string())
            .or_else(|| {
                secret
                    .string_data
                    .as_ref()
                    .and_then(|d| d.get(key))
                    .map(|s| s.trim().to_string())
            })
    };
    let login = value(creds.login_key()).ok_or(creds.login_key())?;
    let api_key = value(creds.api_key_key()).ok_or(creds.api_key_key())?;
    Ok((login, api_key))
}

impl Reconciler for OdooConnection {
    type Context = ConnectionContext;

    fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        match reqwest::Url::parse(&self.spec.url) {
            Ok(url) if url.host_str().is_none() => {
                errors.push(FieldError::new("spec.url", "has no host"));
            }
            Ok(_) => {}
            Err(err) => errors.push(FieldError::new("spec.url", format!("is not a URL: {err}"))),
        }
        if let Some(callback) = &self.spec.callback_base_url
            && let Err(err) = reqwest::Url::parse(callback)
        {
            errors.push(FieldError::new(
                "spec.callbackBaseUrl",
                format!("is not a URL: {err}"),
            ));
        }
        errors
    }

    async fn evaluate(
        obj: Arc<Self>,
        ctx: Arc<ConnectionContext>,
        conditions: &mut ConditionSet,
        status: &mut OdooConnectionStatus,
    ) -> Result<Duration, Error> {
        let namespace = obj.namespace().unwrap_or_default();
        let name = obj.name_any();
        let probe_interval =
            Duration::from_secs(u64::from(obj.spec.probe_interval_seconds.unwrap_or(300)));
        // The driver checked the Secret and its keys a moment ago; a Secret
        // deleted in between is caught by the next reconcile its deletion triggers.
        let Some((login, api_key)) = read_credentials(&ctx.core, &namespace, &obj).await? else {
            return Ok(FIRST_UNREACHABLE_BACKOFF);
        };
        let digest = config_digest(&obj.spec, &login, &api_key);
        let key = (namespace.clone(), name.clone());

        let existing = {
            let entries = ctx.odoo.lock();
            entries
                .get(&key)
                .filter(|e| e.config_digest == digest)
                .and_then(|e| e.client.clone())
        };
        let result = match existing {
            Some(client) => client.probe().await.map(|info| (client, info)),
            None => {
                let config = client_config(&obj.spec, &login, &api_key);
                match OdooClient::connect(config).await {
                    Ok(client) => {
                        let info = client.info().clone();
                        Ok((client, info))
                    }
                    Err(err) => Err(err),
                }
            }
        };

        match result {
            Ok((client, info)) => {
                ctx.odoo.lock().insert(
                    key,
                    Entry {
                        config_digest: digest,
                        client: Some(client),
                        consecutive_failures: 0,
                    },
                );
                status.server_version = Some(info.version.to_string());
                status.server_major_version = Some(info.version.major);
                status.edition = Some(match info.edition {
                    Edition::Community => OdooEdition::Community,
                    Edition::Enterprise => OdooEdition::Enterprise,
                });
                status.uid = Some(info.uid);
                status.protocol = Some(match info.protocol {
                    Protocol::Json2 => OdooProtocol::Json2,
                    Protocol::JsonRpc | Protocol::Auto => OdooProtocol::JsonRpc,
                });
                settle(
                    conditions,
                    ConditionStatus::True,
                    reasons::CONNECTED,
                    format!(
                        "connected to Odoo {} ({}) as uid {} over {}",
                        info.version, info.edition, info.uid, info.protocol
                    ),
                );
                conditions.set(ct::CONNECTED, ConditionStatus::True, reasons::CONNECTED, "");
                Ok(probe_interval)
            }
            Err(err) => Ok(report_failure(
                &ctx.odoo,
                key,
                digest,
                &obj,
                err,
                conditions,
                probe_interval,
            )),
        }
    }

    async fn cleanup(obj: Arc<Self>, ctx: Arc<ConnectionContext>) -> Result<(), Error> {
        ctx.odoo
            .forget(&obj.namespace().unwrap_or_default(), &obj.name_any());
        Ok(())
    }
}

fn report_failure(
    odoo: &OdooClients,
    key: (String, String),
    digest: [u8; 32],
    obj: &OdooConnection,
    err: OdooError,
    conditions: &mut ConditionSet,
    probe_interval: Duration,
) -> Duration {
    let failures = {
        let mut entries = odoo.lock();
        let entry = entries.entry(key).or_insert(Entry {
            config_digest: digest,
            client: None,
            consecutive_failures: 0,
        });
        if entry.config_digest != digest {
            entry.config_digest = digest;
        }
        entry.client = None;
        entry.consecutive_failures = entry.consecutive_failures.saturating_add(1);
        entry.consecutive_failures
    };
    let url = &obj.spec.url;
    let (reason, stalled, message) = match err.kind() {
        ErrorKind::Authentication { .. } => (
            reasons::AUTHENTICATION_FAILED,
            true,
            format!(
                "Odoo at {url} refused the login and API key from Secret {}",
                obj.spec.credentials_secret_ref.name
            ),
        ),
        ErrorKind::UnsupportedVersion { version } => (
            reasons::UNSUPPORTED_VERSION,
            true,
            format!("Odoo at {url} runs version {version}; PlanOps supports 16 to 19"),
        ),
        _ => (
            reasons::UNREACHABLE,
            false,
            format!("Odoo at {url} is unreachable: {err}"),
        ),
    };
    conditions
        .set(ct::READY, ConditionStatus::False, reason, message.clone())
        .set(
            ct::CONNECTED,
            ConditionStatus::False,
            reason,
            message.clone(),
        );
    if stalled {
        conditions
            .set(ct::STALLED, ConditionStatus::True, reason, message)
            .set(ct::RECONCILING, ConditionStatus::False, reason, "");
        probe_interval
    } else {
        conditions
            .set(ct::RECONCILING, ConditionStatus::True, reason, message)
            .set(ct::STALLED, ConditionStatus::False, reason, "");
        let exponent = failures.saturating_sub(1).min(6);
        (FIRST_UNREACHABLE_BACKOFF * 2u32.pow(exponent))
            .min(MAX_UNREACHABLE_BACKOFF)
            .min(probe_interval)
    }
}
