//! Evaluates the small subset of CEL the PlanOps CRDs use in their
//! `x-kubernetes-validations` (`has`, `size`, list literals with
//! `.filter(x, x).size()`, `!`, `&&`, `||`, `+`, comparisons), so that
//! `planops validate` can apply the same rules offline. A rule outside the
//! subset is reported as [`CelError::Unsupported`] and left to the API server,
//! never guessed at.

use serde_json::Value;

/// Why a rule could not be evaluated offline.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CelError {
    #[error("CEL construct outside the offline subset: {0}")]
    Unsupported(String),
    #[error("CEL type mismatch: {0}")]
    Type(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Num(f64),
    Str(String),
    Sym(&'static str),
}

fn tokenize(src: &str) -> Result<Vec<Tok>, CelError> {
    const SYMS: [&str; 17] = [
        "||", "&&", "==", "!=", ">=", "<=", ">", "<", "!", "+", "-", "(", ")", "[", "]", ".", ",",
    ];
    let mut out = Vec::new();
    let bytes = src.as_bytes();
    let mut i = 0;
    'outer: while i < bytes.len() {
        let c = bytes[i] as char;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < bytes.len()
                && ((bytes[i] as char).is_ascii_alphanumeric() || bytes[i] == b'_')
            {
                i += 1;
            }
            out.push(Tok::Ident(src[start..i].to_string()));
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            while i < bytes.len() && ((bytes[i] as char).is_ascii_digit() || bytes[i] == b'.') {
                i += 1;
            }
            let n = src[start..i]
                .parse()
                .map_err(|_| CelError::Unsupported(format!("number {}", &src[start..i])))?;
            out.push(Tok::Num(n));
            continue;
        }
        if c == '\'' || c == '"' {
            let end = src[i + 1..]
                .find(c)
                .ok_or_else(|| CelError::Unsupported("unterminated string".into()))?;
            out.push(Tok::Str(src[i + 1..i + 1 + end].to_string()));
            i += end + 2;
            continue;
        }
        for sym in SYMS {
            if src[i..].starts_with(sym) {
                out.push(Tok::Sym(sym));
                i += sym.len();
                continue 'outer;
            }
        }
        return Err(CelError::Unsupported(format!("character {c:?}")));
    }
    Ok(out)
}

#[derive(Debug, Clone)]
enum Expr {
    Num(f64),
    Str(String),
    Var(String),
    Select(Box<Expr>, String),
    Has(Box<Expr>, String),
    Size(Box<Expr>),
    Filter(Box<Expr>, String, Box<Expr>),
    List(Vec<Expr>),
    Not(Box<Expr>),
    Binary(&'static str, Box<Expr>, Box<Expr>),
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn eat(&mut self, sym: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Sym(s)) if *s == sym) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, sym: &str) -> Result<(), CelError> {
        if self.eat(sym) {
            Ok(())
        } else {
            Err(CelError::Unsupported(format!("expected {sym:?}")))
        }
    }

    fn ident(&mut self) -> Result<String, CelError> {
        match self.toks.get(self.pos).cloned() {
            Some(Tok::Ident(name)) => {
                self.pos += 1;
                Ok(name)
            }
            other => Err(CelError::Unsupported(format!(
                "expected a name, got {other:?}"
            ))),
        }
    }

    fn binary_level(
        &mut self,
        ops: &[&'static str],
        next: fn(&mut Parser) -> Result<Expr, CelError>,
    ) -> Result<Expr, CelError> {
        let mut left = next(self)?;
        'again: loop {
            for op in ops {
                if self.eat(op) {
                    let right = next(self)?;
                    left = Expr::Binary(op, Box::new(left), Box::new(right));
                    continue 'again;
                }
            }
            return Ok(left);
        }
    }

    fn or(&mut self) -> Result<Expr, CelError> {
        self.binary_level(&["||"], Parser::and)
    }

    fn and(&mut self) -> Result<Expr, CelError> {
        self.binary_level(&["&&"], Parser::cmp)
    }

    fn cmp(&mut self) -> Result<Expr, CelError> {
        self.binary_level(&["==", "!=", ">=", "<=", ">", "<"], Parser::add)
    }

    fn add(&mut self) -> Result<Expr, CelError> {
        self.binary_level(&["+", "-"], Parser::unary)
    }

    fn unary(&mut self) -> Result<Expr, CelError> {
        if self.eat("!") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Expr, CelError> {
        let mut expr = self.primary()?;
        while self.eat(".") {
            let name = self.ident()?;
            if self.eat("(") {
                expr = match name.as_str() {
                    "size" => {
                        self.expect(")")?;
                        Expr::Size(Box::new(expr))
                    }
                    "filter" => {
                        let var = self.ident()?;
                        self.expect(",")?;
                        let predicate = self.or()?;
                        self.expect(")")?;
                        Expr::Filter(Box::new(expr), var, Box::new(predicate))
                    }
                    other => return Err(CelError::Unsupported(format!("method {other}"))),
                };
            } else {
                expr = Expr::Select(Box::new(expr), name);
            }
        }
        Ok(expr)
    }

    fn primary(&mut self) -> Result<Expr, CelError> {
        match self.toks.get(self.pos).cloned() {
            Some(Tok::Num(n)) => {
                self.pos += 1;
                Ok(Expr::Num(n))
            }
            Some(Tok::Str(s)) => {
                self.pos += 1;
                Ok(Expr::Str(s))
            }
            Some(Tok::Sym("(")) => {
                self.pos += 1;
                let e = self.or()?;
                self.expect(")")?;
                Ok(e)
            }
            Some(Tok::Sym("[")) => {
                self.pos += 1;
                let mut items = Vec::new();
                if !self.eat("]") {
                    loop {
                        items.push(self.or()?);
                        if self.eat("]") {
                            break;
                        }
                        self.expect(",")?;
                    }
                }
                Ok(Expr::List(items))
            }
            Some(Tok::Ident(name)) => {
                self.pos += 1;
                match name.as_str() {
                    "has" => {
                        self.expect("(")?;
                        let arg = self.postfix()?;
                        self.expect(")")?;
                        match arg {
                            Expr::Select(base, field) => Ok(Expr::Has(base, field)),
                            _ => Err(CelError::Unsupported(
                                "has() needs a field selection".into(),
                            )),
                        }
                    }
                    "size" => {
                        self.expect("(")?;
                        let arg = self.or()?;
                        self.expect(")")?;
                        Ok(Expr::Size(Box::new(arg)))
                    }
                    "true" | "false" | "null" => {
                        Err(CelError::Unsupported(format!("literal {name}")))
                    }
                    _ if matches!(self.peek(), Some(Tok::Sym("("))) => {
                        Err(CelError::Unsupported(format!("function {name}")))
                    }
                    _ => Ok(Expr::Var(name)),
                }
            }
            other => Err(CelError::Unsupported(format!("token {other:?}"))),
        }
    }
}

/// A value during evaluation; `Absent` is a field that is not set.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Bool(bool),
    Num(f64),
    Str(String),
    List(Vec<Val>),
    Json(Value),
    Absent,
}

impl Val {
    fn from_json(v: &Value) -> Val {
        match v {
            Value::Null => Val::Absent,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => n.as_f64().map(Val::Num).unwrap_or(Val::Absent),
            Value::String(s) => Val::Str(s.clone()),
            Value::Array(items) => Val::List(items.iter().map(Val::from_json).collect()),
            Value::Object(_) => Val::Json(v.clone()),
        }
    }
}

struct Env<'a> {
    this: &'a Value,
    vars: Vec<(String, Val)>,
}

fn type_err(what: impl Into<String>) -> CelError {
    CelError::Type(what.into())
}

fn eval(e: &Expr, env: &mut Env<'_>) -> Result<Val, CelError> {
    Ok(match e {
        Expr::Num(n) => Val::Num(*n),
        Expr::Str(s) => Val::Str(s.clone()),
        Expr::Var(name) if name == "self" => Val::from_json(env.this),
        Expr::Var(name) => env
            .vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| CelError::Unsupported(format!("variable {name}")))?,
        Expr::Select(base, field) => match eval(base, env)? {
            // A missing field is where the API server would have applied the
            // schema's default (`[]` for these lists) before running the rule:
            // `size()` reads it as empty, anything else refuses to guess.
            Val::Json(Value::Object(map)) => {
                map.get(field).map(Val::from_json).unwrap_or(Val::Absent)
            }
            other => return Err(type_err(format!("select {field} on {other:?}"))),
        },
        Expr::Has(base, field) => match eval(base, env)? {
            Val::Json(Value::Object(map)) => {
                Val::Bool(map.get(field).is_some_and(|v| !v.is_null()))
            }
            // has(self.a.b) with `a` unset is an error in CEL; the API server
            // reports it, and so does the schema check for a required `a`.
            other => return Err(type_err(format!("has({field}) on {other:?}"))),
        },
        Expr::Size(inner) => match eval(inner, env)? {
            Val::List(items) => Val::Num(items.len() as f64),
            Val::Str(s) => Val::Num(s.chars().count() as f64),
            Val::Json(Value::Object(map)) => Val::Num(map.len() as f64),
            // An unset list field defaults to empty in these CRDs (`#[serde(default)]`).
            Val::Absent => Val::Num(0.0),
            other => return Err(type_err(format!("size of {other:?}"))),
        },
        Expr::Filter(list, var, predicate) => {
            let Val::List(items) = eval(list, env)? else {
                return Err(type_err("filter on a non-list"));
            };
            let mut kept = Vec::new();
            for item in items {
                env.vars.push((var.clone(), item.clone()));
                let keep = eval(predicate, env);
                env.vars.pop();
                if keep? == Val::Bool(true) {
                    kept.push(item);
                }
            }
            Val::List(kept)
        }
        Expr::List(items) => Val::List(
            items
                .iter()
                .map(|i| eval(i, env))
                .collect::<Result<_, _>>()?,
        ),
        Expr::Not(inner) => match eval(inner, env)? {
            Val::Bool(b) => Val::Bool(!b),
            other => return Err(type_err(format!("!{other:?}"))),
        },
        Expr::Binary(op, left, right) => {
            // CEL's || and && are commutative over errors; short-circuiting on the
            // deciding side first is what makes the has()-guarded rules work.
            if *op == "||" || *op == "&&" {
                let decisive = *op == "||";
                let l = eval(left, env);
                if l == Ok(Val::Bool(decisive)) {
                    return Ok(Val::Bool(decisive));
                }
                let r = eval(right, env)?;
                if r == Val::Bool(decisive) {
                    return Ok(Val::Bool(decisive));
                }
                return match (l?, r) {
                    (Val::Bool(_), Val::Bool(_)) => Ok(Val::Bool(!decisive)),
                    (a, b) => Err(type_err(format!("{a:?} {op} {b:?}"))),
                };
            }
            let l = eval(left, env)?;
            let r = eval(right, env)?;
            match (*op, l, r) {
                ("+", Val::Num(a), Val::Num(b)) => Val::Num(a + b),
                ("-", Val::Num(a), Val::Num(b)) => Val::Num(a - b),
                ("==", a, b) => Val::Bool(a == b),
                ("!=", a, b) => Val::Bool(a != b),
                (">=", Val::Num(a), Val::Num(b)) => Val::Bool(a >= b),
                ("<=", Val::Num(a), Val::Num(b)) => Val::Bool(a <= b),
                (">", Val::Num(a), Val::Num(b)) => Val::Bool(a > b),
                ("<", Val::Num(a), Val::Num(b)) => Val::Bool(a < b),
                (op, a, b) => return Err(type_err(format!("{a:?} {op} {b:?}"))),
            }
        }
    })
}

/// Evaluates `rule` with `self` bound to `this`: `Ok(true)` when the rule holds.
pub fn check(rule: &str, this: &Value) -> Result<bool, CelError> {
    let toks = tokenize(rule)?;
    let mut parser = Parser { toks, pos: 0 };
    let expr = parser.or()?;
    if parser.pos != parser.toks.len() {
        return Err(CelError::Unsupported("trailing input".into()));
    }
    let mut env = Env {
        this,
        vars: Vec::new(),
    };
    match eval(&expr, &mut env)? {
        Val::Bool(b) => Ok(b),
        other => Err(type_err(format!("rule yields {other:?}, not a bool"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ONE_OF: &str = "[has(self.a), has(self.b), has(self.c)].filter(x, x).size() == 1";

    #[test]
    fn exactly_one_of() {
        assert_eq!(check(ONE_OF, &json!({"a": {}})), Ok(true));
        assert_eq!(check(ONE_OF, &json!({"a": {}, "c": 1})), Ok(false));
        assert_eq!(check(ONE_OF, &json!({})), Ok(false));
        assert_eq!(check(ONE_OF, &json!({"a": null})), Ok(false));
    }

    #[test]
    fn guarded_comparison_and_sizes() {
        let rule = "!has(self.lo) || !has(self.hi) || self.hi >= self.lo";
        assert_eq!(check(rule, &json!({"lo": 5})), Ok(true));
        assert_eq!(check(rule, &json!({"lo": 5, "hi": 4})), Ok(false));
        assert_eq!(check(rule, &json!({"lo": 5, "hi": 5})), Ok(true));
        let rule = "size(self.users) + size(self.groups) > 0";
        assert_eq!(check(rule, &json!({"users": []})), Ok(false));
        assert_eq!(check(rule, &json!({"groups": ["g"]})), Ok(true));
        let rule = "!(has(self.x) && has(self.y))";
        assert_eq!(check(rule, &json!({"x": 1, "y": 2})), Ok(false));
        assert_eq!(check(rule, &json!({"x": 1})), Ok(true));
    }

    #[test]
    fn nested_has_and_unsupported() {
        let rule = "[has(self.assignee.user), has(self.assignee.group)].filter(x, x).size() == 1";
        assert_eq!(check(rule, &json!({"assignee": {"user": "u"}})), Ok(true));
        assert!(matches!(
            check("self.name.matches('^a')", &json!({"name": "a"})),
            Err(CelError::Unsupported(_))
        ));
        assert!(matches!(
            check("self.all(x, x > 1)", &json!([])),
            Err(CelError::Unsupported(_))
        ));
    }
}
