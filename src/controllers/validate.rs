//! Spec checks the OpenAPI schema and CEL cannot express, shared by the
//! reconcilers and by `planops validate`.

use std::fmt;

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

/// Checks an RFC 9535 JSONPath expression.
pub fn check_json_path(errors: &mut Vec<FieldError>, field: &str, text: Option<&str>) {
    if let Some(text) = text
        && let Err(err) = serde_json_path::JsonPath::parse(text)
    {
        errors.push(FieldError::new(
            field,
            format!("{text:?} is not a JSONPath expression: {err}"),
        ));
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
