//! Spec checks the OpenAPI schema and CEL cannot express, shared by the
//! reconcilers and by `planops validate`.

use std::fmt;

use crate::api::common::SecretKeyRef;

/// One problem with a spec, naming the field at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path of the field, for example `spec.triggers.schedule.timeZone`.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }

    /// All errors in one line, for a condition message.
    pub fn join(errors: &[FieldError]) -> String {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Checks an Odoo domain given as JSON or in the Python-literal form.
pub fn check_domain(errors: &mut Vec<FieldError>, field: &str, text: Option<&str>) {
    if let Some(text) = text
        && let Err(err) = crate::odoo::domain::Domain::parse(text)
    {
        errors.push(FieldError::new(field, err.to_string()));
    }
}

/// Checks an RFC 9535 JSONPath expression, within PlanOps' limits.
pub fn check_json_path(errors: &mut Vec<FieldError>, field: &str, text: Option<&str>) {
    use crate::supplier::mapping::{JsonPathError, parse_json_path};
    let Some(text) = text else { return };
    match parse_json_path(text) {
        Ok(_) => {}
        // Too long to be worth quoting back.
        Err(err @ JsonPathError::TooLong { .. }) => {
            errors.push(FieldError::new(field, format!("the JSONPath is {err}")))
        }
        Err(err) => errors.push(FieldError::new(
            field,
            format!("{text:?} is not a JSONPath expression PlanOps accepts: {err}"),
        )),
    }
}

/// Checks a schedule; the schedule's errors name their field relative to `spec`.
pub fn check_schedule(errors: &mut Vec<FieldError>, spec: &crate::schedule::ScheduleSpec) {
    if let Err(err) = crate::schedule::Schedule::parse(spec) {
        let text = err.to_string();
        match text.split_once(": ") {
            Some((field, message)) => {
                errors.push(FieldError::new(format!("spec.{field}"), message))
            }
            None => errors.push(FieldError::new("spec.triggers.schedule", text)),
        }
    }
}

/// Checks the Secret names and keys a spec refers to. A value that is not a
/// valid name is often the secret itself, pasted where its name belongs, so
/// the message never repeats it.
pub fn check_secret_refs(refs: &[(String, SecretKeyRef)]) -> Vec<FieldError> {
    let mut errors: Vec<FieldError> = Vec::new();
    for (field, secret_ref) in refs {
        // The credentials' two keys share one name field.
        let base = field
            .strip_suffix(".loginKey")
            .or_else(|| field.strip_suffix(".apiKeyKey"));
        let (name_field, key_field) = match base {
            Some(base) => (format!("{base}.name"), field.clone()),
            None => (format!("{field}.name"), format!("{field}.key")),
        };
        if !is_secret_name(&secret_ref.name) && !errors.iter().any(|e| e.field == name_field) {
            errors.push(FieldError::new(
                name_field,
                "is not a valid Secret name (lowercase letters, digits, '-' and '.', at most 253 characters); \
                 give the name of a Secret, never the secret itself (the value is not repeated here)",
            ));
        }
        if !is_secret_key(&secret_ref.key) {
            errors.push(FieldError::new(
                key_field,
                "is not a valid Secret key (letters, digits, '-', '_' and '.', at most 253 characters); \
                 give the key's name, never the secret itself (the value is not repeated here)",
            ));
        }
    }
    errors
}

/// Whether `name` is a DNS subdomain, as Secret names are.
pub fn is_secret_name(name: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !name.is_empty()
        && name.len() <= 253
        && name.starts_with(alnum)
        && name.ends_with(alnum)
        && name.chars().all(|c| alnum(c) || c == '-' || c == '.')
}

/// Whether `key` can be a key of a Secret's data.
pub fn is_secret_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(name: &str, key: &str) -> SecretKeyRef {
        SecretKeyRef {
            name: name.into(),
            key: key.into(),
        }
    }

    #[test]
    fn pasted_secrets_are_refused_without_being_repeated() {
        let pasted = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let errors = check_secret_refs(&[
            (
                "spec.inbound.webhook.auth.bearer.secretRef".into(),
                reference(pasted, "token"),
            ),
            (
                "spec.actions[0].notify.urlSecretRef".into(),
                reference("hook", "https://hooks.example.com/T0/B0/XYZ"),
            ),
            (
                "spec.actions[0].notify.signingSecretRef".into(),
                reference("hook", "secret"),
            ),
            (
                "spec.credentialsSecretRef.loginKey".into(),
                reference("Odoo Creds", "login"),
            ),
            (
                "spec.credentialsSecretRef.apiKeyKey".into(),
                reference("Odoo Creds", "apiKey"),
            ),
        ]);
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.inbound.webhook.auth.bearer.secretRef.name",
                "spec.actions[0].notify.urlSecretRef.key",
                "spec.credentialsSecretRef.name",
            ]
        );
        let text = FieldError::join(&errors);
        assert!(!text.contains("MfKQ9r8") && !text.contains("XYZ"), "{text}");
        assert!(check_secret_refs(&[("f".into(), reference("a.b-c9", "tls.crt_2-x"))]).is_empty());
    }
}
