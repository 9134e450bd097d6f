//! The CRDs' `x-kubernetes-validations` rules, compiled and evaluated with the
//! `cel` crate (cel-rust), so that `planops validate` applies them offline with
//! the API server's semantics rather than a hand-picked subset.
//!
//! What the API server does and this module copies: `self` is the value at the
//! rule's schema node, typed by that schema (a `number` field is a double even
//! when YAML wrote `5`, an `integer` an int), object fields that are null count
//! as unset for `has()`, property names that are not CEL identifiers are
//! escaped (`foo-bar` is `self.foo__dash__bar`), and a rule is skipped on a
//! null value.
//!
//! What cannot be had offline is said, never guessed: a rule the crate cannot
//! compile or evaluate (a Kubernetes-only library such as `quantity()` or
//! `isSorted()`, a runtime error) and a transition rule (`oldSelf`, which the
//! API server evaluates on update only) come back as [`Outcome::NotChecked`].

use std::collections::HashMap;
use std::sync::Arc;

use cel::common::types::{CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey};
use cel::common::types::{CelNull, CelOptional, CelString};
use cel::common::value::Val;
use cel::{Context, Env, Program};
use serde_json::Value;

use super::schema::{SchemaType, Structural, as_whole};

/// Why the CEL environment could not be set up: a bug in this build, not in
/// a manifest.
#[derive(Debug, thiserror::Error)]
#[error("setting up the CEL environment: {0}")]
pub struct EnvError(#[from] cel::DeclarationError);

/// The CEL environment the rules compile and run in: the standard library and
/// the extension libraries the API server's base environment shares with
/// cel-rust (strings, lists, math, encoders). Kubernetes' own libraries
/// (quantity, IP, CIDR, URL, semver, format, its list functions) have no
/// counterpart here: a rule that calls one is not checked offline.
pub fn environment() -> Result<Arc<Env>, EnvError> {
    let mut env = Env::stdlib();
    env.add_extension(cel::extensions::strings)?;
    env.add_extension(cel::extensions::lists)?;
    env.add_extension(cel::extensions::math)?;
    env.add_extension(cel::extensions::encoders)?;
    // cel-go, which the API server runs, keeps the last entry of a map literal
    // that repeats a key instead of failing.
    env.set_error_on_duplicate_map_keys(false);
    Ok(Arc::new(env))
}

/// One `x-kubernetes-validations` entry, compiled once per CRD.
#[derive(Debug)]
pub struct Rule {
    /// The rule as written, for messages.
    pub text: String,
    program: Result<Program, String>,
    message: Option<String>,
    /// `messageExpression`, compiled; `None` when the rule has none.
    message_expression: Option<Result<Program, String>>,
    /// `fieldPath`, relative to the rule's node (`.detector`).
    field_path: Option<String>,
    /// Reads `oldSelf`: a transition rule.
    transition: bool,
    /// `optionalOldSelf: true`: the rule also runs on create, with `oldSelf`
    /// unset (`optional.none()`).
    optional_old_self: bool,
}

impl Rule {
    /// Compiles one rule object of `x-kubernetes-validations`; `None` when it
    /// has no `rule` text (the API server refuses such a CRD).
    pub fn compile(env: &Env, rule: &Value) -> Option<Rule> {
        let text = rule.get("rule")?.as_str()?.to_string();
        // A problem is one line: the parser's first line says what is wrong,
        // the lines after it draw a caret under the source.
        let compile = |source: &str| {
            env.compile(source).map_err(|e| {
                let text = e.to_string();
                text.lines().next().unwrap_or_default().to_string()
            })
        };
        let program = compile(&text);
        let transition = program
            .as_ref()
            .is_ok_and(|p| p.references().has_variable("oldSelf"));
        let string = |key: &str| rule.get(key).and_then(Value::as_str).map(str::to_string);
        Some(Rule {
            message_expression: string("messageExpression").map(|e| compile(&e)),
            message: string("message"),
            field_path: string("fieldPath"),
            optional_old_self: rule
                .get("optionalOldSelf")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            transition,
            program,
            text,
        })
    }

    /// The field a failure is reported at: `path` (the rule's node) joined
    /// with the rule's `fieldPath`, as the API server reports it.
    pub fn field(&self, path: &str) -> String {
        let relative = self
            .field_path
            .as_deref()
            .unwrap_or("")
            .trim_start_matches('.');
        match (path.is_empty(), relative.is_empty()) {
            (_, true) => path.to_string(),
            (true, false) => relative.to_string(),
            (false, false) if relative.starts_with('[') => format!("{path}{relative}"),
            (false, false) => format!("{path}.{relative}"),
        }
    }

    /// Evaluates the rule with `self` bound to `value`, read through `schema`
    /// (the schema node the rule is declared on).
    pub fn check(&self, env: &Arc<Env>, schema: &Structural, value: &Value) -> Outcome {
        let program = match &self.program {
            Ok(program) => program,
            Err(e) => {
                return Outcome::NotChecked(format!("the cel crate cannot compile it: {e}"));
            }
        };
        if self.transition && !self.optional_old_self {
            return Outcome::NotChecked(
                "a transition rule (it reads oldSelf), which the API server evaluates only when \
                 an object is updated"
                    .into(),
            );
        }
        let this = match to_cel(value, schema) {
            Ok(this) => this,
            Err(e) => return Outcome::NotChecked(e),
        };
        let mut context = Context::with_env(Arc::clone(env));
        context.add_variable_as_val("self", this);
        if self.transition {
            // On create there is no old object: an optionalOldSelf rule sees none.
            context.add_variable_as_val("oldSelf", Box::new(CelOptional::none()));
        }
        match program.execute(&context) {
            Ok(cel::Value::Bool(true)) => Outcome::Holds,
            Ok(cel::Value::Bool(false)) => Outcome::Fails(self.failure_message(&context)),
            Ok(other) => Outcome::NotChecked(format!(
                "it evaluated to {:?}, not to a bool",
                other.type_of()
            )),
            Err(e) => Outcome::NotChecked(format!("evaluating it failed: {e}")),
        }
    }

    /// `messageExpression` when it yields a non-empty string, else `message`,
    /// else the rule itself: the API server's order.
    fn failure_message(&self, context: &Context<'_, '_>) -> String {
        if let Some(Ok(expression)) = &self.message_expression
            && let Ok(cel::Value::String(text)) = expression.execute(context)
            && !text.trim().is_empty()
        {
            return text.to_string();
        }
        self.message
            .clone()
            .unwrap_or_else(|| format!("failed rule: {}", self.text))
    }
}

/// The verdict on one rule for one value.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Holds,
    /// The rule is false; the message to report.
    Fails(String),
    /// Why the rule could not be decided offline; the API server still checks it.
    NotChecked(String),
}

/// The value the API server binds to `self`: `value` read through its schema.
/// An error is a value the API server could not convert either (the schema
/// check reports it); the rule is then not checked here.
fn to_cel<'v>(value: &'v Value, schema: &Structural) -> Result<Box<dyn Val + 'v>, String> {
    if value.is_null() {
        return if schema.nullable {
            Ok(Box::new(CelNull))
        } else {
            Err("null where the schema does not allow it".into())
        };
    }
    if schema.int_or_string {
        return match value {
            Value::String(s) => Ok(Box::new(CelString::from(s.as_str()))),
            Value::Number(n) => n
                .as_i64()
                .map(|i| Box::new(CelInt::from(i)) as Box<dyn Val>)
                .ok_or_else(|| format!("{n} is not an int64")),
            _ => Err("an int-or-string holds something else".into()),
        };
    }
    let mismatch = |expected: &str| format!("the value is not {expected}");
    match (schema.schema_type, value) {
        (Some(SchemaType::Object), Value::Object(map)) => {
            let mut entries: HashMap<CelMapKey<'v>, Box<dyn Val + 'v>> = HashMap::new();
            if let Some(additional) = &schema.additional_properties {
                // A map: every key is data, reachable as self['key'].
                for (key, item) in map {
                    entries.insert(CelMapKey::from(key.as_str()), to_cel(item, additional)?);
                }
            } else {
                for (key, item) in map {
                    // Only declared fields are visible, and a null one is unset.
                    let Some(field_schema) = schema.properties.get(key) else {
                        continue;
                    };
                    if item.is_null() {
                        continue;
                    }
                    let Some(name) = escape_field_name(key) else {
                        continue;
                    };
                    entries.insert(CelMapKey::from(name), to_cel(item, field_schema)?);
                }
            }
            Ok(Box::new(CelMap::from(entries)))
        }
        (Some(SchemaType::Array), Value::Array(items)) => {
            let Some(item_schema) = &schema.items else {
                return Err("an array schema without items".into());
            };
            let list = items
                .iter()
                .map(|item| to_cel(item, item_schema))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Box::new(CelList::from(list)))
        }
        (Some(SchemaType::String), Value::String(s)) => Ok(Box::new(CelString::from(s.as_str()))),
        // Whole numbers that YAML wrote without a fraction are still doubles.
        (Some(SchemaType::Number), Value::Number(n)) => n
            .as_f64()
            .map(|f| Box::new(CelDouble::from(f)) as Box<dyn Val>)
            .ok_or_else(|| mismatch("a number")),
        (Some(SchemaType::Integer), Value::Number(n)) => n
            .as_i64()
            // YAML's `1.0` for an integer field, as the schema check accepts it.
            .or_else(|| n.as_f64().and_then(as_whole))
            .map(|i| Box::new(CelInt::from(i)) as Box<dyn Val>)
            .ok_or_else(|| mismatch("an int64")),
        (Some(SchemaType::Boolean), Value::Bool(b)) => Ok(Box::new(CelBool::from(*b))),
        (None, _) if schema.preserve_unknown_fields => Err(
            "a rule on a field that preserves unknown fields, whose type CEL cannot know".into(),
        ),
        (Some(expected), _) => Err(mismatch(expected.with_article())),
        (None, _) => Err("a schema without a type".into()),
    }
}

/// CEL words that cannot name a field: the API server escapes them as `__word__`.
const RESERVED: [&str; 21] = [
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// A property name as a CEL program reads it, by the API server's escaping
/// rules: `__` becomes `__underscores__`, `.` `__dot__`, `-` `__dash__`, `/`
/// `__slash__`, a reserved word `__word__`. `None`: the API server makes the
/// field unreachable from CEL.
fn escape_field_name(name: &str) -> Option<String> {
    let first = name.chars().next()?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/');
    if first.is_ascii_digit() || !name.chars().all(allowed) {
        return None;
    }
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let mut escaped = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("__") {
            escaped.push_str("__underscores__");
            rest = after;
            continue;
        }
        match c {
            '.' => escaped.push_str("__dot__"),
            '-' => escaped.push_str("__dash__"),
            '/' => escaped.push_str("__slash__"),
            c => escaped.push(c),
        }
        rest = &rest[c.len_utf8()..];
    }
    Some(escaped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Checks `rule` declared on an object schema with fields `a`, `b`, `c`
    /// (objects), `lo`, `hi` (numbers), `users` and `groups` (string lists),
    /// `name` (a string) and `assignee` (an object with `user` and `group`).
    fn check(rule: &str, value: Value) -> Outcome {
        let schema = json!({
            "type": "object",
            "properties": {
                "a": {"type": "object", "nullable": true, "properties": {}},
                "b": {"type": "object", "properties": {}},
                "c": {"type": "integer"},
                "lo": {"type": "number"},
                "hi": {"type": "number"},
                "users": {"type": "array", "items": {"type": "string"}},
                "groups": {"type": "array", "items": {"type": "string"}},
                "name": {"type": "string"},
                "my-field": {"type": "string"},
                "assignee": {"type": "object", "properties": {
                    "user": {"type": "string"}, "group": {"type": "string"}
                }},
            },
        });
        let env = environment().expect("environment");
        let structural = Structural::new(&env, &schema);
        let rule = Rule::compile(&env, &json!({"rule": rule, "message": "m"})).expect("rule");
        rule.check(&env, &structural, &value)
    }

    const ONE_OF: &str = "[has(self.a), has(self.b), has(self.c)].filter(x, x).size() == 1";

    #[test]
    fn exactly_one_of() {
        assert_eq!(check(ONE_OF, json!({"a": {}})), Outcome::Holds);
        assert_eq!(
            check(ONE_OF, json!({"a": {}, "c": 1})),
            Outcome::Fails("m".into())
        );
        assert_eq!(check(ONE_OF, json!({})), Outcome::Fails("m".into()));
        // A null field is unset, as on the API server.
        assert_eq!(
            check(ONE_OF, json!({"a": null})),
            Outcome::Fails("m".into())
        );
    }

    #[test]
    fn guarded_comparison_and_sizes() {
        let rule = "!has(self.lo) || !has(self.hi) || self.hi >= self.lo";
        assert_eq!(check(rule, json!({"lo": 5})), Outcome::Holds);
        // `5` and `4.5` are both doubles for a `number` field.
        assert_eq!(
            check(rule, json!({"lo": 5, "hi": 4.5})),
            Outcome::Fails("m".into())
        );
        assert_eq!(check(rule, json!({"lo": 5, "hi": 5.0})), Outcome::Holds);
        let rule = "size(self.users) + size(self.groups) > 0";
        assert_eq!(
            check(rule, json!({"users": [], "groups": []})),
            Outcome::Fails("m".into())
        );
        assert_eq!(
            check(rule, json!({"users": [], "groups": ["g"]})),
            Outcome::Holds
        );
        let rule = "!(has(self.a) && has(self.b))";
        assert_eq!(
            check(rule, json!({"a": {}, "b": {}})),
            Outcome::Fails("m".into())
        );
        assert_eq!(check(rule, json!({"a": {}})), Outcome::Holds);
    }

    #[test]
    fn nested_has_regex_and_escaped_names() {
        let rule = "[has(self.assignee.user), has(self.assignee.group)].filter(x, x).size() == 1";
        assert_eq!(
            check(rule, json!({"assignee": {"user": "u"}})),
            Outcome::Holds
        );
        assert_eq!(
            check("self.name.matches('^a')", json!({"name": "ab"})),
            Outcome::Holds
        );
        assert_eq!(
            check(
                "self.my__dash__field.startsWith('x')",
                json!({"my-field": "xy"})
            ),
            Outcome::Holds
        );
        assert_eq!(
            escape_field_name("a__b.c/d"),
            Some("a__underscores__b__dot__c__slash__d".into())
        );
        assert_eq!(escape_field_name("namespace"), Some("__namespace__".into()));
        assert_eq!(escape_field_name("1st"), None);
    }

    #[test]
    fn what_cannot_be_decided_offline_is_said() {
        let not_checked = |rule: &str, value: Value| match check(rule, value) {
            Outcome::NotChecked(why) => why,
            other => panic!("{rule}: {other:?}"),
        };
        // A Kubernetes-only library function.
        assert!(
            not_checked("self.users.isSorted()", json!({"users": ["a"]}))
                .contains("Undeclared reference to 'isSorted'")
        );
        // has() through an unset object is an error in CEL.
        assert!(
            not_checked("has(self.assignee.user)", json!({})).contains("No such key: assignee")
        );
        // A rule that does not parse, reported on one line.
        let why = not_checked("self.a &&", json!({}));
        assert!(why.starts_with("the cel crate cannot compile it"), "{why}");
        assert!(!why.contains('\n'), "{why}");
        // A transition rule: the API server runs it on update only.
        assert!(not_checked("self.c == oldSelf.c", json!({"c": 1})).contains("transition rule"));
        // Not a bool.
        assert!(not_checked("self.c", json!({"c": 1})).contains("not to a bool"));
    }

    #[test]
    fn message_expression_and_optional_old_self() {
        let env = environment().expect("environment");
        let schema = json!({"type": "object", "properties": {"c": {"type": "integer"}}});
        let structural = Structural::new(&env, &schema);
        let rule = Rule::compile(
            &env,
            &json!({"rule": "self.c < 3", "messageExpression": "'c is ' + string(self.c)"}),
        )
        .expect("rule");
        assert_eq!(
            rule.check(&env, &structural, &json!({"c": 7})),
            Outcome::Fails("c is 7".into())
        );
        let rule = Rule::compile(
            &env,
            &json!({"rule": "!oldSelf.hasValue() || self.c == oldSelf.value().c", "optionalOldSelf": true}),
        )
        .expect("rule");
        assert_eq!(
            rule.check(&env, &structural, &json!({"c": 7})),
            Outcome::Holds
        );
    }
}
