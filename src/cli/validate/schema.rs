//! A kind's OpenAPI v3 structural schema, applied offline the way the API
//! server applies it to a create, in the API server's order:
//!
//! 1. the body is normalised: object fields that are null where the schema
//!    does not allow null and that have no default are dropped, then defaults
//!    are filled in ([`Structural::normalize`]);
//! 2. the value is validated against the schema, by the `jsonschema` crate
//!    against a JSON Schema translation of it ([`json_schema`]);
//! 3. unless step 2 found an error that the API server treats as blocking (a
//!    wrong type, a missing required field, a value outside its enum, a string
//!    or list too long), the `x-kubernetes-validations` CEL rules run on the
//!    normalised value (see [`super::cel`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use cel::Env;
use jsonschema::error::ValidationErrorKind;
use serde_json::{Map, Value, json};

use super::Severity;
use super::cel::{Outcome, Rule};

/// A CRD schema that cannot be used: a bug in the generated CRDs, not in a manifest.
#[derive(Debug, thiserror::Error)]
#[error("its OpenAPI schema, translated to JSON Schema, does not compile: {0}")]
pub struct SchemaError(String);

/// The `type` of a schema node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaType {
    Object,
    Array,
    String,
    Integer,
    Number,
    Boolean,
}

impl SchemaType {
    fn parse(name: &str) -> Option<SchemaType> {
        Some(match name {
            "object" => SchemaType::Object,
            "array" => SchemaType::Array,
            "string" => SchemaType::String,
            "integer" => SchemaType::Integer,
            "number" => SchemaType::Number,
            "boolean" => SchemaType::Boolean,
            _ => return None,
        })
    }

    /// The type as a message names it: "an integer".
    pub fn with_article(self) -> &'static str {
        match self {
            SchemaType::Object => "an object",
            SchemaType::Array => "an array",
            SchemaType::String => "a string",
            SchemaType::Integer => "an integer",
            SchemaType::Number => "a number",
            SchemaType::Boolean => "a boolean",
        }
    }
}

/// One node of a structural schema, read once per kind: what normalising and
/// the CEL rules need (the JSON Schema validator has its own copy).
#[derive(Debug, Default)]
pub struct Structural {
    pub schema_type: Option<SchemaType>,
    pub nullable: bool,
    pub int_or_string: bool,
    pub preserve_unknown_fields: bool,
    pub default: Option<Value>,
    pub properties: BTreeMap<String, Structural>,
    /// The schema of every value of a map (`additionalProperties` as a schema).
    pub additional_properties: Option<Box<Structural>>,
    pub items: Option<Box<Structural>>,
    /// `x-kubernetes-validations`, compiled.
    pub rules: Vec<Rule>,
}

impl Structural {
    pub fn new(env: &Env, schema: &Value) -> Structural {
        let flag = |key: &str| schema.get(key).and_then(Value::as_bool).unwrap_or(false);
        let child = |key: &str| {
            schema
                .get(key)
                .filter(|s| s.is_object())
                .map(|s| Box::new(Structural::new(env, s)))
        };
        Structural {
            schema_type: schema
                .get("type")
                .and_then(Value::as_str)
                .and_then(SchemaType::parse),
            nullable: flag("nullable"),
            int_or_string: flag("x-kubernetes-int-or-string"),
            preserve_unknown_fields: flag("x-kubernetes-preserve-unknown-fields"),
            default: schema.get("default").cloned(),
            properties: schema
                .get("properties")
                .and_then(Value::as_object)
                .map(|p| {
                    p.iter()
                        .map(|(name, s)| (name.clone(), Structural::new(env, s)))
                        .collect()
                })
                .unwrap_or_default(),
            additional_properties: child("additionalProperties"),
            items: child("items"),
            rules: schema
                .get("x-kubernetes-validations")
                .and_then(Value::as_array)
                .map(|rules| rules.iter().filter_map(|r| Rule::compile(env, r)).collect())
                .unwrap_or_default(),
        }
    }

    /// Whether this node or one below it has a CEL rule.
    fn has_rules(&self) -> bool {
        !self.rules.is_empty()
            || self.properties.values().any(Structural::has_rules)
            || self
                .additional_properties
                .as_deref()
                .is_some_and(Structural::has_rules)
            || self.items.as_deref().is_some_and(Structural::has_rules)
    }

    fn field_schema(&self, name: &str) -> Option<&Structural> {
        self.properties
            .get(name)
            .or(self.additional_properties.as_deref())
    }

    /// What the API server does to a request body before it validates it:
    /// drops the non-nullable nulls that have no default, then fills in the
    /// defaults (including over the non-nullable nulls that have one). A rule
    /// such as `size(self.users) > 0` relies on it, `users` defaulting to `[]`.
    pub fn normalize(&self, value: &mut Value) {
        self.prune_nulls(value);
        self.apply_defaults(value);
    }

    fn prune_nulls(&self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                map.retain(|name, item| {
                    !(item.is_null()
                        && self
                            .field_schema(name)
                            .is_some_and(|s| !s.nullable && s.default.is_none()))
                });
                for (name, item) in map.iter_mut() {
                    if let Some(schema) = self.field_schema(name) {
                        schema.prune_nulls(item);
                    }
                }
            }
            Value::Array(items) => {
                if let Some(schema) = &self.items {
                    items.iter_mut().for_each(|item| schema.prune_nulls(item));
                }
            }
            _ => {}
        }
    }

    fn apply_defaults(&self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (name, schema) in &self.properties {
                    if let Some(default) = &schema.default
                        && map
                            .get(name)
                            .is_none_or(|v| v.is_null() && !schema.nullable)
                    {
                        map.insert(name.clone(), default.clone());
                    }
                }
                for (name, item) in map.iter_mut() {
                    if let Some(schema) = self.properties.get(name) {
                        schema.apply_defaults(item);
                    } else if let Some(schema) = &self.additional_properties {
                        schema.default_null(item);
                        schema.apply_defaults(item);
                    }
                }
            }
            Value::Array(items) => {
                if let Some(schema) = &self.items {
                    for item in items {
                        schema.default_null(item);
                        schema.apply_defaults(item);
                    }
                }
            }
            _ => {}
        }
    }

    /// A null list item or map value where this schema allows no null takes its default.
    fn default_null(&self, item: &mut Value) {
        if item.is_null()
            && !self.nullable
            && let Some(default) = &self.default
        {
            *item = default.clone();
        }
    }

    /// Runs the CEL rules of this node and of the nodes below it on `value`,
    /// found at `path`.
    fn check_rules(&self, env: &Arc<Env>, value: &Value, path: &str, out: &mut Vec<Finding>) {
        // The API server does not run rules on a null value.
        if value.is_null() {
            return;
        }
        for rule in &self.rules {
            match rule.check(env, self, value) {
                Outcome::Holds => {}
                Outcome::Fails(message) => out.push(Finding {
                    field: at(&rule.field(path)),
                    message,
                    severity: Severity::Error,
                }),
                Outcome::NotChecked(why) => out.push(Finding {
                    field: at(&rule.field(path)),
                    message: format!(
                        "validation rule not checked offline, left to the API server ({why}): {}",
                        rule.text
                    ),
                    severity: Severity::Warning,
                }),
            }
        }
        match value {
            Value::Object(map) => {
                for (name, item) in map {
                    if let Some(schema) = self.field_schema(name) {
                        schema.check_rules(env, item, &join(path, name), out);
                    }
                }
            }
            Value::Array(items) => {
                if let Some(schema) = &self.items {
                    for (i, item) in items.iter().enumerate() {
                        schema.check_rules(env, item, &format!("{path}[{i}]"), out);
                    }
                }
            }
            _ => {}
        }
    }
}

/// One problem the schema finds.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Path of the field, `spec.levels[0].name`; `<root>` for the object itself.
    pub field: String,
    pub message: String,
    pub severity: Severity,
}

/// What checking one object against its kind's schema gives.
#[derive(Debug)]
pub struct Checked {
    /// The object as the API server would store it (nulls pruned, defaults
    /// filled in): what the operator reads.
    pub normalized: Value,
    pub findings: Vec<Finding>,
}

/// A kind's schema, ready to check objects with.
pub struct KindSchema {
    structural: Structural,
    /// Whether the schema has a CEL rule anywhere.
    has_rules: bool,
    validator: jsonschema::Validator,
    env: Arc<Env>,
}

impl KindSchema {
    /// `openapi` is the CRD version's `openAPIV3Schema`.
    pub fn new(env: Arc<Env>, openapi: &Value) -> Result<KindSchema, SchemaError> {
        let mut translated = json_schema(openapi);
        if let Value::Object(root) = &mut translated {
            add_object_envelope(root);
        }
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            // The API server's patterns are Go RE2 expressions: the regex crate
            // reads the same syntax, fancy-regex (the default) JavaScript's.
            .with_pattern_options(jsonschema::PatternOptions::regex())
            .build(&translated)
            .map_err(|e| SchemaError(e.to_string()))?;
        let structural = Structural::new(&env, openapi);
        Ok(KindSchema {
            has_rules: structural.has_rules(),
            structural,
            validator,
            env,
        })
    }

    /// Checks one object as the API server checks a create.
    pub fn check(&self, object: &Value) -> Checked {
        let mut normalized = object.clone();
        self.structural.normalize(&mut normalized);
        let mut findings = Vec::new();
        let mut blocking = false;
        for error in self.validator.iter_errors(&normalized) {
            let path = field_path(&normalized, error.instance_path().as_str());
            let kind = error.kind();
            blocking |= matches!(
                kind,
                ValidationErrorKind::Type { .. }
                    | ValidationErrorKind::Required { .. }
                    | ValidationErrorKind::Enum { .. }
                    | ValidationErrorKind::MaxLength { .. }
                    | ValidationErrorKind::MaxItems { .. }
                    | ValidationErrorKind::MaxProperties { .. }
            );
            let mut push = |field: String, message: String| {
                findings.push(Finding {
                    field,
                    message,
                    severity: Severity::Error,
                })
            };
            match kind {
                // One problem per field, at the field, as kubectl's strict
                // field validation reports it.
                ValidationErrorKind::AdditionalProperties { unexpected } => {
                    for name in unexpected {
                        push(join(&path, name), format!("unknown field {name:?}"));
                    }
                }
                // Every allowed value, where the crate's message names three.
                ValidationErrorKind::Enum { options } => {
                    let allowed: Vec<String> = options
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(Value::to_string)
                        .collect();
                    push(
                        at(&path),
                        format!(
                            "{} is not one of {}",
                            short(error.instance()),
                            allowed.join(", ")
                        ),
                    );
                }
                // At the missing field rather than at the object that lacks it.
                ValidationErrorKind::Required { property } => {
                    let name = property
                        .as_str()
                        .map_or_else(|| property.to_string(), str::to_string);
                    push(join(&path, &name), error.to_string());
                }
                // A Secret reference that breaks the schema (too long, not a
                // string) may be the secret itself: never quote it.
                _ if is_secret_reference(&path) => {
                    push(at(&path), error.masked_with("the value").to_string())
                }
                _ => push(
                    at(&path),
                    error.masked_with(short(error.instance())).to_string(),
                ),
            }
        }
        if blocking && self.has_rules {
            findings.push(Finding {
                field: at(""),
                // The API server's words for the same situation.
                message: "some validation rules were not checked because the object was invalid; \
                          correct the existing errors to complete validation"
                    .into(),
                severity: Severity::Warning,
            });
        } else if !blocking {
            self.structural
                .check_rules(&self.env, &normalized, "", &mut findings);
        }
        Checked {
            normalized,
            findings,
        }
    }
}

/// Translates an OpenAPI v3 structural schema to JSON Schema 2020-12, keyword
/// by keyword:
/// - kept as they are, the keywords both read alike: `type`, `enum`,
///   `minimum`, `maximum`, `multipleOf`, `minLength`, `maxLength`, `pattern`,
///   `minItems`, `maxItems`, `uniqueItems`, `minProperties`, `maxProperties`,
///   `required`, and the subschemas (`properties`, `items`,
///   `additionalProperties`, `allOf`, `anyOf`, `oneOf`, `not`);
/// - `exclusiveMinimum: true` (OpenAPI's boolean beside `minimum`) becomes
///   2020-12's `exclusiveMinimum: <minimum>`, likewise for the maximum;
/// - `nullable: true` adds `null` to `type` and to `enum`;
/// - `x-kubernetes-int-or-string` is `type: [integer, string]`;
/// - `x-kubernetes-list-type: set` is `uniqueItems`;
/// - an object with `properties` is closed (`additionalProperties: false`)
///   unless it has `x-kubernetes-preserve-unknown-fields`: kubectl's strict
///   field validation refuses unknown fields;
/// - `format` is dropped: the API server's format checks (go-openapi's) differ
///   from JSON Schema's (`date-time`, `uuid`, ...), ignore formats they do not
///   know, and leave numbers alone (`int64`, `double`), so no string format is
///   checked offline;
/// - annotations (`description`, `default`, `example`, ...) and the other
///   `x-kubernetes-*` extensions carry no check and are dropped.
fn json_schema(openapi: &Value) -> Value {
    let Some(node) = openapi.as_object() else {
        // `additionalProperties: false` and the like.
        return openapi.clone();
    };
    let flag = |key: &str| node.get(key).and_then(Value::as_bool).unwrap_or(false);
    let mut out = Map::new();
    for (key, value) in node {
        let translated = match key.as_str() {
            "minimum" | "maximum" | "multipleOf" => whole_as_integer(value),
            "type" | "enum" | "minLength" | "maxLength" | "pattern" | "minItems" | "maxItems"
            | "uniqueItems" | "minProperties" | "maxProperties" | "required" => value.clone(),
            "properties" => Value::Object(
                value
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, s)| (name.clone(), json_schema(s)))
                    .collect(),
            ),
            "items" | "additionalProperties" | "not" => json_schema(value),
            "allOf" | "anyOf" | "oneOf" => Value::Array(
                value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(json_schema)
                    .collect(),
            ),
            _ => continue,
        };
        out.insert(key.clone(), translated);
    }
    for (exclusive, bound) in [
        ("exclusiveMinimum", "minimum"),
        ("exclusiveMaximum", "maximum"),
    ] {
        if flag(exclusive)
            && let Some(limit) = out.remove(bound)
        {
            out.insert(exclusive.into(), limit);
        }
    }
    if flag("x-kubernetes-int-or-string") {
        out.insert("type".into(), json!(["integer", "string"]));
    }
    if flag("nullable") {
        match out.get_mut("type") {
            Some(Value::String(single)) => {
                let single = std::mem::take(single);
                out.insert("type".into(), json!([single, "null"]));
            }
            Some(Value::Array(types)) => types.push(json!("null")),
            _ => {}
        }
        if let Some(Value::Array(allowed)) = out.get_mut("enum") {
            allowed.push(Value::Null);
        }
    }
    if node.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("set") {
        out.insert("uniqueItems".into(), Value::Bool(true));
    }
    if flag("x-kubernetes-embedded-resource") {
        add_object_envelope(&mut out);
    }
    if out.contains_key("properties")
        && !out.contains_key("additionalProperties")
        && !flag("x-kubernetes-preserve-unknown-fields")
    {
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    Value::Object(out)
}

/// `1.0` as `1`: the same bound, quoted in messages the way the manifest
/// writes it (k8s-openapi holds every bound as a float).
fn whole_as_integer(bound: &Value) -> Value {
    match bound.as_f64().filter(|_| bound.is_f64()).and_then(as_whole) {
        Some(whole) => json!(whole),
        None => bound.clone(),
    }
}

/// `f` as an integer when it has no fraction and a double holds it exactly
/// (below 2^53): YAML's `1.0` read as the `1` it means.
pub fn as_whole(f: f64) -> Option<i64> {
    const EXACT_BELOW: f64 = 9_007_199_254_740_992.0;
    (f.fract() == 0.0 && f.abs() < EXACT_BELOW).then_some(f as i64)
}

/// The generated root schema lists `spec` and `status` only: the API server
/// owns the object envelope (`metadata` is checked on its own, see
/// `check_metadata`), so it is declared here rather than refused as unknown.
/// An embedded resource (`x-kubernetes-embedded-resource`) has one too.
fn add_object_envelope(schema: &mut Map<String, Value>) {
    let Value::Object(properties) = schema
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()))
    else {
        return;
    };
    for (name, declared) in [
        ("apiVersion", json!({"type": "string"})),
        ("kind", json!({"type": "string"})),
        ("metadata", json!({"type": "object"})),
    ] {
        properties.entry(name).or_insert(declared);
    }
}

/// The dotted path (`spec.levels[0].name`) of a JSON pointer into `instance`;
/// the instance tells a list index from a map key named with digits.
fn field_path(instance: &Value, pointer: &str) -> String {
    let mut path = String::new();
    let mut node = Some(instance);
    for raw in pointer.split('/').skip(1) {
        let segment = raw.replace("~1", "/").replace("~0", "~");
        match node {
            Some(Value::Array(items)) => {
                node = segment.parse::<usize>().ok().and_then(|i| items.get(i));
                path.push_str(&format!("[{segment}]"));
            }
            _ => {
                node = node.and_then(|v| v.get(&segment));
                path = join(&path, &segment);
            }
        }
    }
    path
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// The field name a problem of the whole object is reported at.
fn at(path: &str) -> String {
    if path.is_empty() {
        "<root>".to_string()
    } else {
        path.to_string()
    }
}

/// Whether `path` is inside a reference to a Secret (`urlSecretRef.name`,
/// `secretRefs[0].key`, `bearerTokenRef`, `credentialsSecretRef.loginKey`).
fn is_secret_reference(path: &str) -> bool {
    let path = path.to_ascii_lowercase();
    path.contains("secretref") || path.contains("tokenref")
}

/// A value as a message quotes it: its JSON, cut at 60 characters.
fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_schema(spec: Value) -> KindSchema {
        let env = super::super::cel::environment().expect("environment");
        let root = json!({"type": "object", "properties": {"spec": spec}});
        KindSchema::new(env, &root).expect("schema")
    }

    fn errors(schema: &KindSchema, spec: Value) -> Vec<(String, String)> {
        let mut found: Vec<(String, String)> = schema
            .check(&json!({"apiVersion": "x/v1", "kind": "K", "metadata": {}, "spec": spec}))
            .findings
            .into_iter()
            .filter(|f| f.severity == Severity::Error)
            .map(|f| (f.field, f.message))
            .collect();
        found.sort();
        found
    }

    #[test]
    fn schema_reports_type_enum_range_and_unknown_fields() {
        let schema = kind_schema(json!({
            "type": "object",
            "required": ["a"],
            "properties": {
                "a": {"type": "integer", "minimum": 1, "maximum": 5},
                "b": {"type": "string", "enum": ["X", "Y"]},
                "c": {"type": "array", "maxItems": 1, "items": {"type": "string", "pattern": "^[a-z]+$"}},
            }
        }));
        let found = errors(
            &schema,
            json!({"a": 9, "b": "Z", "c": ["ok", "NO"], "d": 1}),
        );
        let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            ["spec.a", "spec.b", "spec.c", "spec.c[1]", "spec.d"]
        );
        assert_eq!(found[0].1, "9 is greater than the maximum of 5");
        assert_eq!(found[4].1, "unknown field \"d\"");
        let found = errors(&schema, json!({"a": "x"}));
        assert_eq!(found[0].0, "spec.a");
        assert!(
            found[0].1.contains("is not of type \"integer\""),
            "{found:?}"
        );
        let found = errors(&schema, json!({}));
        assert_eq!(
            found,
            [(
                "spec.a".to_string(),
                "\"a\" is a required property".to_string()
            )]
        );
        // YAML's `2.0` is an integer, as the API server reads it.
        assert_eq!(errors(&schema, json!({"a": 2.0})), []);
    }

    #[test]
    fn nullable_exclusive_and_int_or_string() {
        let schema = kind_schema(json!({
            "type": "object",
            "properties": {
                "mode": {"type": "string", "enum": ["A"], "nullable": true},
                "ratio": {"type": "number", "minimum": 0, "exclusiveMinimum": true},
                "port": {"x-kubernetes-int-or-string": true,
                         "anyOf": [{"type": "integer"}, {"type": "string"}]},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "when": {"type": "string", "format": "date-time"},
            }
        }));
        assert_eq!(
            errors(
                &schema,
                json!({"mode": null, "ratio": 0.5, "port": "http", "free": {"x": 1}, "when": "soon"})
            ),
            []
        );
        assert_eq!(errors(&schema, json!({"port": 80})), []);
        let found = errors(&schema, json!({"ratio": 0, "port": true}));
        let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        assert!(fields.contains(&"spec.ratio"), "{found:?}");
        assert!(fields.contains(&"spec.port"), "{found:?}");
    }

    #[test]
    fn nulls_are_pruned_and_defaults_filled_before_validating() {
        let schema = kind_schema(json!({
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "string"}, "default": []},
                "note": {"type": "string"},
            },
            "x-kubernetes-validations": [{"rule": "size(self.tags) == 0 || has(self.note)", "message": "tags need a note"}],
        }));
        // A non-nullable null without a default is dropped, so `name: null`
        // is a missing required field and `note: null` is simply unset.
        let checked = schema.check(&json!({"spec": {"name": null, "note": null}}));
        assert_eq!(checked.normalized, json!({"spec": {"tags": []}}));
        assert_eq!(checked.findings[0].field, "spec.name");
        // The blocking error keeps the rules from running, as on the API server.
        assert_eq!(checked.findings.len(), 2);
        assert_eq!(checked.findings[1].severity, Severity::Warning);
        assert_eq!(
            errors(&schema, json!({"name": "n", "tags": ["t"]})),
            [("spec".to_string(), "tags need a note".to_string())]
        );
    }

    #[test]
    fn secret_references_are_never_quoted() {
        let reference = json!({"type": "object", "properties": {
            "name": {"type": "string", "maxLength": 20},
            "key": {"type": "string"},
        }});
        let schema = kind_schema(json!({"type": "object", "properties": {
            "urlSecretRef": reference,
            "plain": {"type": "string", "maxLength": 20},
        }}));
        let pasted = "https://hooks.example.com/services/T000/B000/XXXXXXXX";
        let found = errors(
            &schema,
            json!({"urlSecretRef": {"name": pasted, "key": 7}, "plain": pasted}),
        );
        let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.plain",
                "spec.urlSecretRef.key",
                "spec.urlSecretRef.name"
            ]
        );
        assert!(
            found[0].1.contains("XXXXXXXX"),
            "other fields still quote: {found:?}"
        );
        for (_, message) in &found[1..] {
            assert!(
                !message.contains("XXXXXXXX") && !message.contains('7'),
                "{message}"
            );
            assert!(message.starts_with("the value "), "{message}");
        }
    }

    #[test]
    fn paths_tell_list_indexes_from_map_keys() {
        let value = json!({"spec": {"list": [{"a": 1}], "map": {"0": {"b": 2}}}});
        assert_eq!(field_path(&value, "/spec/list/0/a"), "spec.list[0].a");
        assert_eq!(field_path(&value, "/spec/map/0/b"), "spec.map.0.b");
        assert_eq!(field_path(&value, ""), "");
    }
}
