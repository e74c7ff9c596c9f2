//! A very small CEL subset for `x-kubernetes-validations`: field access on `self`, string and
//! number literals, `==` `!=` `<` `<=` `>` `>=` `in`, `&&` `||` `!`, `has()`, `size()`, and the
//! string methods `startsWith`, `endsWith`, `contains`, `matches`. A rule outside the subset, or
//! one that uses `oldSelf`, is not evaluated (see the README's known differences).

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Int(i64),
    Float(f64),
    Op(&'static str),
}

fn tokenize(src: &str) -> Option<Vec<Tok>> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect()));
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            if text.contains('.') {
                out.push(Tok::Float(text.parse().ok()?));
            } else {
                out.push(Tok::Int(text.parse().ok()?));
            }
            continue;
        }
        if c == '\'' || c == '"' {
            let quote = c;
            i += 1;
            let mut s = String::new();
            loop {
                let ch = *chars.get(i)?;
                i += 1;
                if ch == quote {
                    break;
                }
                if ch == '\\' {
                    let esc = *chars.get(i)?;
                    i += 1;
                    s.push(match esc {
                        'n' => '\n',
                        't' => '\t',
                        other => other,
                    });
                } else {
                    s.push(ch);
                }
            }
            out.push(Tok::Str(s));
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        let op = match two.as_str() {
            "||" => Some("||"),
            "&&" => Some("&&"),
            "==" => Some("=="),
            "!=" => Some("!="),
            "<=" => Some("<="),
            ">=" => Some(">="),
            _ => None,
        };
        if let Some(op) = op {
            out.push(Tok::Op(op));
            i += 2;
            continue;
        }
        let op = match c {
            '!' => "!",
            '<' => "<",
            '>' => ">",
            '(' => "(",
            ')' => ")",
            '[' => "[",
            ']' => "]",
            ',' => ",",
            '.' => ".",
            _ => return None,
        };
        out.push(Tok::Op(op));
        i += 1;
    }
    Some(out)
}

#[derive(Debug, Clone)]
enum Expr {
    Lit(Value),
    Ident(String),
    Member(Box<Expr>, String),
    Index(Box<Expr>, Box<Expr>),
    Call(Option<Box<Expr>>, String, Vec<Expr>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp(&'static str, Box<Expr>, Box<Expr>),
    In(Box<Expr>, Box<Expr>),
    List(Vec<Expr>),
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn eat_op(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Op(o)) if *o == op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect_op(&mut self, op: &str) -> Option<()> {
        self.eat_op(op).then_some(())
    }
    fn or(&mut self) -> Option<Expr> {
        let mut l = self.and()?;
        while self.eat_op("||") {
            l = Expr::Or(Box::new(l), Box::new(self.and()?));
        }
        Some(l)
    }
    fn and(&mut self) -> Option<Expr> {
        let mut l = self.unary()?;
        while self.eat_op("&&") {
            l = Expr::And(Box::new(l), Box::new(self.unary()?));
        }
        Some(l)
    }
    fn unary(&mut self) -> Option<Expr> {
        if self.eat_op("!") {
            return Some(Expr::Not(Box::new(self.unary()?)));
        }
        self.cmp()
    }
    fn cmp(&mut self) -> Option<Expr> {
        let l = self.postfix()?;
        for op in ["==", "!=", "<=", ">=", "<", ">"] {
            if self.eat_op(op) {
                let r = self.postfix()?;
                return Some(Expr::Cmp(op, Box::new(l), Box::new(r)));
            }
        }
        if matches!(self.peek(), Some(Tok::Ident(i)) if i == "in") {
            self.pos += 1;
            let r = self.postfix()?;
            return Some(Expr::In(Box::new(l), Box::new(r)));
        }
        Some(l)
    }
    fn args(&mut self) -> Option<Vec<Expr>> {
        let mut args = Vec::new();
        if self.eat_op(")") {
            return Some(args);
        }
        loop {
            args.push(self.or()?);
            if self.eat_op(")") {
                return Some(args);
            }
            self.expect_op(",")?;
        }
    }
    fn postfix(&mut self) -> Option<Expr> {
        let mut e = self.primary()?;
        loop {
            if self.eat_op(".") {
                let Some(Tok::Ident(name)) = self.peek().cloned() else {
                    return None;
                };
                self.pos += 1;
                if self.eat_op("(") {
                    if !["size", "startsWith", "endsWith", "contains", "matches"]
                        .contains(&name.as_str())
                    {
                        return None;
                    }
                    let args = self.args()?;
                    e = Expr::Call(Some(Box::new(e)), name, args);
                } else {
                    e = Expr::Member(Box::new(e), name);
                }
            } else if self.eat_op("[") {
                let idx = self.or()?;
                self.expect_op("]")?;
                e = Expr::Index(Box::new(e), Box::new(idx));
            } else {
                return Some(e);
            }
        }
    }
    fn primary(&mut self) -> Option<Expr> {
        let tok = self.peek()?.clone();
        self.pos += 1;
        match tok {
            Tok::Str(s) => Some(Expr::Lit(Value::String(s))),
            Tok::Int(i) => Some(Expr::Lit(Value::from(i))),
            Tok::Float(f) => Some(Expr::Lit(Value::from(f))),
            Tok::Ident(id) => match id.as_str() {
                "true" => Some(Expr::Lit(Value::Bool(true))),
                "false" => Some(Expr::Lit(Value::Bool(false))),
                "null" => Some(Expr::Lit(Value::Null)),
                _ => {
                    if self.eat_op("(") {
                        if id != "has" && id != "size" {
                            return None;
                        }
                        let args = self.args()?;
                        Some(Expr::Call(None, id, args))
                    } else {
                        Some(Expr::Ident(id))
                    }
                }
            },
            Tok::Op("(") => {
                let e = self.or()?;
                self.expect_op(")")?;
                Some(e)
            }
            Tok::Op("[") => {
                let mut items = Vec::new();
                if self.eat_op("]") {
                    return Some(Expr::List(items));
                }
                loop {
                    items.push(self.or()?);
                    if self.eat_op("]") {
                        return Some(Expr::List(items));
                    }
                    self.expect_op(",")?;
                }
            }
            _ => None,
        }
    }
}

fn uses_old_self(e: &Expr) -> bool {
    match e {
        Expr::Ident(i) => i == "oldSelf",
        Expr::Lit(_) => false,
        Expr::Member(a, _) | Expr::Not(a) => uses_old_self(a),
        Expr::Index(a, b)
        | Expr::And(a, b)
        | Expr::Or(a, b)
        | Expr::Cmp(_, a, b)
        | Expr::In(a, b) => uses_old_self(a) || uses_old_self(b),
        Expr::Call(t, _, args) => {
            t.as_ref().is_some_and(|t| uses_old_self(t)) || args.iter().any(uses_old_self)
        }
        Expr::List(items) => items.iter().any(uses_old_self),
    }
}

/// A parsed rule.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    expr: Expr,
}

impl Rule {
    /// Parses a rule; `None` when it is outside the supported subset (the rule is then ignored).
    pub fn parse(src: &str) -> Option<Rule> {
        let toks = tokenize(src)?;
        let mut p = Parser { toks, pos: 0 };
        let expr = p.or()?;
        if p.pos != p.toks.len() || uses_old_self(&expr) {
            return None;
        }
        Some(Rule { expr })
    }

    /// `Ok(true)` when the rule holds for `self_value`; `Err` for an evaluation error.
    pub fn eval(&self, self_value: &Value) -> Result<bool, String> {
        match eval(&self.expr, self_value)? {
            Value::Bool(b) => Ok(b),
            other => Err(format!("rule evaluated to {other}, not a bool")),
        }
    }
}

fn eval(e: &Expr, this: &Value) -> Result<Value, String> {
    Ok(match e {
        Expr::Lit(v) => v.clone(),
        Expr::Ident(i) if i == "self" => this.clone(),
        Expr::Ident(i) => return Err(format!("undeclared reference to '{i}'")),
        Expr::Member(t, name) => {
            let tv = eval(t, this)?;
            match tv.get(name) {
                Some(v) => v.clone(),
                None => return Err(format!("no such key: {name}")),
            }
        }
        Expr::Index(t, i) => {
            let tv = eval(t, this)?;
            let iv = eval(i, this)?;
            let found = match (&tv, &iv) {
                (Value::Array(a), Value::Number(n)) => n.as_u64().and_then(|n| a.get(n as usize)),
                (Value::Object(m), Value::String(k)) => m.get(k),
                _ => None,
            };
            found.cloned().ok_or_else(|| format!("no such key: {iv}"))?
        }
        Expr::Not(a) => Value::Bool(!truthy(&eval(a, this)?)?),
        Expr::And(a, b) => Value::Bool(truthy(&eval(a, this)?)? && truthy(&eval(b, this)?)?),
        Expr::Or(a, b) => Value::Bool(truthy(&eval(a, this)?)? || truthy(&eval(b, this)?)?),
        Expr::Cmp(op, a, b) => {
            let (l, r) = (eval(a, this)?, eval(b, this)?);
            let ord = match (&l, &r) {
                (Value::Number(x), Value::Number(y)) => x.as_f64().partial_cmp(&y.as_f64()),
                (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
                _ => None,
            };
            Value::Bool(match *op {
                "==" => l == r || ord == Some(std::cmp::Ordering::Equal),
                "!=" => !(l == r || ord == Some(std::cmp::Ordering::Equal)),
                "<" => ord.ok_or("no such overload")?.is_lt(),
                "<=" => ord.ok_or("no such overload")?.is_le(),
                ">" => ord.ok_or("no such overload")?.is_gt(),
                _ => ord.ok_or("no such overload")?.is_ge(),
            })
        }
        Expr::In(a, b) => {
            let (l, r) = (eval(a, this)?, eval(b, this)?);
            Value::Bool(match &r {
                Value::Array(items) => items.contains(&l),
                Value::Object(m) => l.as_str().is_some_and(|k| m.contains_key(k)),
                _ => return Err("no such overload".into()),
            })
        }
        Expr::List(items) => Value::Array(
            items
                .iter()
                .map(|i| eval(i, this))
                .collect::<Result<_, _>>()?,
        ),
        Expr::Call(None, name, args) if name == "has" => {
            let [Expr::Member(t, field)] = args.as_slice() else {
                return Err("has() needs a field".into());
            };
            Value::Bool(eval(t, this)?.get(field).is_some())
        }
        Expr::Call(None, name, args) if name == "size" && args.len() == 1 => {
            size(&eval(&args[0], this)?)?
        }
        Expr::Call(Some(t), name, args) => {
            let tv = eval(t, this)?;
            let argv: Vec<Value> = args
                .iter()
                .map(|a| eval(a, this))
                .collect::<Result<_, _>>()?;
            match (name.as_str(), &tv, argv.as_slice()) {
                ("size", _, []) => size(&tv)?,
                ("startsWith", Value::String(s), [Value::String(p)]) => {
                    Value::Bool(s.starts_with(p.as_str()))
                }
                ("endsWith", Value::String(s), [Value::String(p)]) => {
                    Value::Bool(s.ends_with(p.as_str()))
                }
                ("contains", Value::String(s), [Value::String(p)]) => {
                    Value::Bool(s.contains(p.as_str()))
                }
                ("matches", Value::String(s), [Value::String(p)]) => {
                    let re = regex::Regex::new(p).map_err(|e| e.to_string())?;
                    Value::Bool(re.is_match(s))
                }
                _ => return Err(format!("found no matching overload for '{name}'")),
            }
        }
        Expr::Call(None, name, _) => return Err(format!("undeclared reference to '{name}'")),
    })
}

fn size(v: &Value) -> Result<Value, String> {
    Ok(Value::from(match v {
        Value::String(s) => s.chars().count(),
        Value::Array(a) => a.len(),
        Value::Object(m) => m.len(),
        _ => return Err("found no matching overload for 'size'".into()),
    }))
}

fn truthy(v: &Value) -> Result<bool, String> {
    v.as_bool().ok_or_else(|| "no such overload".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn name_rules() {
        let rule =
            Rule::parse("self.metadata.name == 'flux' || self.metadata.name.startsWith('flux-')")
                .unwrap();
        assert!(rule.eval(&json!({"metadata": {"name": "flux"}})).unwrap());
        assert!(rule.eval(&json!({"metadata": {"name": "flux-a"}})).unwrap());
        assert!(!rule.eval(&json!({"metadata": {"name": "other"}})).unwrap());
        let rule = Rule::parse("has(self.spec) && size(self.spec.items) <= 2").unwrap();
        assert!(rule.eval(&json!({"spec": {"items": [1, 2]}})).unwrap());
        assert!(!rule.eval(&json!({"spec": {"items": [1, 2, 3]}})).unwrap());
        assert!(Rule::parse("self.x == oldSelf.x").is_none());
        assert!(Rule::parse("self.all(x, x > 0)").is_none());
    }
}
