//! XML-RPC (`/xmlrpc/2/<service>` and the legacy `/xmlrpc/<service>`): the
//! value codec and the route handler, marshalling like Odoo's server does
//! (`allow_none=False`, 32-bit ints, control characters stripped).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use quick_xml::events::Event;
use serde_json::{Map, Number, Value};

use super::{CallCtx, ExceptionInfo, RpcError, dispatch_service};
use crate::server::{SimState, dropped_reply};

/// A malformed XML-RPC document.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct XmlRpcError(pub String);

fn bad(message: impl Into<String>) -> XmlRpcError {
    XmlRpcError(message.into())
}

/// One parsed XML element: its name, child elements and direct text.
#[derive(Debug, Default)]
struct Element {
    name: String,
    children: Vec<Element>,
    text: String,
}

impl Element {
    fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|child| child.name == name)
    }
}

/// How deep elements may nest in a request. Each level of a value takes three
/// (`value`, `array`, `data`), so this admits values as deep as the 128 levels
/// serde_json allows a JSON-RPC request. The element tree is decoded and
/// dropped recursively: without the bound, a request of a few hundred
/// kilobytes of `<x>` overflowed the stack and aborted the process.
pub const MAX_ELEMENT_DEPTH: usize = 400;

fn parse_document(xml: &[u8]) -> Result<Element, XmlRpcError> {
    let text = std::str::from_utf8(xml).map_err(|_| bad("request is not valid UTF-8"))?;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut stack: Vec<Element> = vec![Element::default()];
    loop {
        let event = reader
            .read_event()
            .map_err(|error| bad(format!("not well-formed: {error}")))?;
        match event {
            // The stack holds the document's root too, hence `>`.
            Event::Start(_) if stack.len() > MAX_ELEMENT_DEPTH => {
                return Err(bad(format!(
                    "elements nest deeper than {MAX_ELEMENT_DEPTH} levels"
                )));
            }
            Event::Start(start) => stack.push(Element {
                name: local_name(start.local_name().as_ref()),
                ..Element::default()
            }),
            Event::Empty(empty) => {
                let element = Element {
                    name: local_name(empty.local_name().as_ref()),
                    ..Element::default()
                };
                current(&mut stack)?.children.push(element);
            }
            Event::End(_) => {
                let finished = stack.pop().ok_or_else(|| bad("unbalanced end tag"))?;
                current(&mut stack)?.children.push(finished);
            }
            // XML 1.0 line endings, as Python's expat reads them: `\r\n` and
            // `\r` become `\n`, while NEL and U+2028 stay text (quick-xml's
            // default, XML 1.1, turned them into `\n`; found by fuzzing).
            Event::Text(content) => {
                let decoded = content
                    .xml10_content()
                    .map_err(|error| bad(format!("bad text: {error}")))?;
                current(&mut stack)?.text.push_str(&decoded);
            }
            Event::CData(content) => {
                let decoded = content
                    .xml10_content()
                    .map_err(|error| bad(format!("bad CDATA: {error}")))?;
                current(&mut stack)?.text.push_str(&decoded);
            }
            Event::GeneralRef(reference) => {
                let resolved = match reference
                    .resolve_char_ref()
                    .map_err(|error| bad(format!("bad character reference: {error}")))?
                {
                    Some(ch) => ch.to_string(),
                    None => {
                        let name = reference
                            .decode()
                            .map_err(|error| bad(format!("bad entity: {error}")))?;
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| bad(format!("undefined entity &{name};")))?
                            .to_string()
                    }
                };
                current(&mut stack)?.text.push_str(&resolved);
            }
            // Entity definitions are how "billion laughs" documents start; no
            // XML-RPC client sends a DOCTYPE.
            Event::DocType(_) => return Err(bad("DOCTYPE is not allowed")),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    let mut root = stack.pop().ok_or_else(|| bad("empty document"))?;
    if !stack.is_empty() {
        return Err(bad("unclosed element"));
    }
    match root.children.len() {
        1 => Ok(root.children.remove(0)),
        0 => Err(bad("no element found")),
        _ => Err(bad("junk after document element")),
    }
}

fn current(stack: &mut [Element]) -> Result<&mut Element, XmlRpcError> {
    stack.last_mut().ok_or_else(|| bad("unbalanced end tag"))
}

fn local_name(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

/// Parses a `<methodCall>` into its method name and parameters.
pub fn parse_method_call(xml: &[u8]) -> Result<(String, Vec<Value>), XmlRpcError> {
    let root = parse_document(xml)?;
    if root.name != "methodCall" {
        return Err(bad(format!("expected methodCall, found {}", root.name)));
    }
    let method = root
        .child("methodName")
        .map(|name| name.text.trim().to_string())
        .filter(|name| !name.is_empty())
        .ok_or_else(|| bad("methodCall without methodName"))?;
    let mut params = Vec::new();
    if let Some(list) = root.child("params") {
        for param in list.children.iter().filter(|c| c.name == "param") {
            let value = param
                .child("value")
                .ok_or_else(|| bad("param without value"))?;
            params.push(decode_value(value)?);
        }
    }
    Ok((method, params))
}

fn decode_value(value: &Element) -> Result<Value, XmlRpcError> {
    let Some(typed) = value.children.first() else {
        // An untyped value is a string.
        return Ok(Value::String(value.text.clone()));
    };
    let text = typed.text.trim();
    match typed.name.as_str() {
        "int" | "i4" | "i8" | "i1" | "i2" => text
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| bad(format!("invalid integer {text:?}"))),
        "boolean" => match text {
            "1" => Ok(Value::Bool(true)),
            "0" => Ok(Value::Bool(false)),
            _ => Err(bad(format!("bad boolean value {text:?}"))),
        },
        "string" => Ok(Value::String(typed.text.clone())),
        "double" | "float" | "bigdecimal" => text
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| bad(format!("invalid double {text:?}"))),
        "dateTime.iso8601" => Ok(Value::String(odoo_datetime(text))),
        // Binary fields take base64 text, which is what the element holds.
        "base64" => Ok(Value::String(text.split_whitespace().collect())),
        "nil" => Ok(Value::Null),
        "array" => {
            let data = typed
                .child("data")
                .ok_or_else(|| bad("array without data"))?;
            data.children
                .iter()
                .filter(|c| c.name == "value")
                .map(decode_value)
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        "struct" => {
            let mut map = Map::new();
            for member in typed.children.iter().filter(|c| c.name == "member") {
                let name = member
                    .child("name")
                    .ok_or_else(|| bad("member without name"))?;
                let value = member
                    .child("value")
                    .ok_or_else(|| bad("member without value"))?;
                map.insert(name.text.clone(), decode_value(value)?);
            }
            Ok(Value::Object(map))
        }
        other => Err(bad(format!("unknown type tag {other:?}"))),
    }
}

/// `20250301T08:00:00` → `2025-03-01 08:00:00`, the form Odoo fields accept.
fn odoo_datetime(text: &str) -> String {
    let compact = text.replace('-', "");
    match compact.split_once('T') {
        Some((date, time)) if date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{}-{}-{} {}", &date[..4], &date[4..6], &date[6..8], time)
        }
        _ => text.to_string(),
    }
}

/// Why a value cannot be sent back (Python's marshaller raises these).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MarshalError {
    #[error("cannot marshal None unless allow_none is enabled")]
    None,
    #[error("int exceeds XML-RPC limits")]
    IntOverflow,
}

impl MarshalError {
    fn into_rpc(self) -> RpcError {
        let name = match self {
            MarshalError::None => "builtins.TypeError",
            MarshalError::IntOverflow => "builtins.OverflowError",
        };
        RpcError::Python {
            name,
            message: self.to_string(),
        }
    }
}

fn encode_value(value: &Value, out: &mut String) -> Result<(), MarshalError> {
    out.push_str("<value>");
    match value {
        Value::Null => return Err(MarshalError::None),
        Value::Bool(flag) => {
            out.push_str(if *flag {
                "<boolean>1</boolean>"
            } else {
                "<boolean>0</boolean>"
            });
        }
        Value::Number(number) => {
            if let Some(int) = number.as_i64() {
                if i32::try_from(int).is_err() {
                    return Err(MarshalError::IntOverflow);
                }
                out.push_str(&format!("<int>{int}</int>"));
            } else if number.is_u64() {
                return Err(MarshalError::IntOverflow);
            } else {
                let float = number.as_f64().unwrap_or_default();
                out.push_str(&format!("<double>{}</double>", python_float_repr(float)));
            }
        }
        Value::String(text) => {
            out.push_str("<string>");
            push_escaped(text, out);
            out.push_str("</string>");
        }
        Value::Array(items) => {
            out.push_str("<array><data>\n");
            for item in items {
                encode_value(item, out)?;
            }
            out.push_str("</data></array>");
        }
        Value::Object(map) => {
            out.push_str("<struct>\n");
            for (key, item) in map {
                out.push_str("<member>\n<name>");
                push_escaped(key, out);
                out.push_str("</name>\n");
                encode_value(item, out)?;
                out.push_str("</member>\n");
            }
            out.push_str("</struct>");
        }
    }
    out.push_str("</value>\n");
    Ok(())
}

fn python_float_repr(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e16 {
        format!("{value:.1}")
    } else {
        value.to_string()
    }
}

/// Escapes like Python's marshaller, after dropping the control characters
/// XML 1.0 cannot carry (Odoo strips them rather than failing).
fn push_escaped(text: &str, out: &mut String) {
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\t' | '\n' | '\r' => out.push(ch),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
}

/// A `<methodResponse>` carrying one value.
pub fn encode_response(value: &Value) -> Result<String, MarshalError> {
    let mut out = String::from("<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n");
    encode_value(value, &mut out)?;
    out.push_str("</param>\n</params>\n</methodResponse>\n");
    Ok(out)
}

/// A `<methodResponse>` carrying a fault.
pub fn encode_fault(code: &Value, message: &str) -> String {
    let mut out = String::from(
        "<?xml version='1.0'?>\n<methodResponse>\n<fault>\n<value><struct>\n<member>\n<name>faultCode</name>\n",
    );
    // The simulator's codes are small ints or strings, which always marshal.
    // Any other value that cannot (None, a big int) goes as its text rather
    // than leave a half-written element behind (found by fuzzing).
    let mut encoded = String::new();
    if encode_value(code, &mut encoded).is_err() {
        encoded.clear();
        let _ = encode_value(&Value::String(code.to_string()), &mut encoded);
    }
    out.push_str(&encoded);
    out.push_str("</member>\n<member>\n<name>faultString</name>\n");
    let _ = encode_value(&Value::String(message.to_string()), &mut out);
    out.push_str("</member>\n</struct></value>\n</fault>\n</methodResponse>\n");
    out
}

fn fault_for(info: &ExceptionInfo, legacy: bool) -> String {
    if legacy {
        let (code, message) = info.legacy_fault();
        encode_fault(&Value::String(code), &message)
    } else {
        encode_fault(
            &Value::from(info.xmlrpc_fault_code()),
            &info.xmlrpc_fault_string(),
        )
    }
}

fn xml_response(body: String) -> Response {
    ([(CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}

async fn handle(
    state: Arc<SimState>,
    ctx: CallCtx,
    service: &str,
    body: &[u8],
    legacy: bool,
) -> Response {
    let outcome = match parse_method_call(body) {
        Ok((method, params)) => dispatch_service(&state, &ctx, service, &method, params).await,
        Err(error) => Err(RpcError::Python {
            name: "xml.parsers.expat.ExpatError",
            message: error.0,
        }),
    };
    if ctx.reply_dropped() {
        return dropped_reply();
    }
    let body = match outcome {
        Ok(value) => encode_response(&value)
            .unwrap_or_else(|error| fault_for(&error.into_rpc().exception(), legacy)),
        Err(error) => fault_for(&error.exception(), legacy),
    };
    xml_response(body)
}

/// `POST /xmlrpc/2/<service>`: integer fault codes.
pub async fn xmlrpc_2(
    State(state): State<Arc<SimState>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path(service): Path<String>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    state.warn_deprecated(peer.ip(), &headers, "/xmlrpc/2");
    handle(state, CallCtx::new(peer.ip()), &service, &body, false).await
}

/// `POST /xmlrpc/<service>`: the historic string fault codes.
pub async fn xmlrpc_legacy(
    State(state): State<Arc<SimState>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path(service): Path<String>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    state.warn_deprecated(peer.ip(), &headers, "/xmlrpc");
    handle(state, CallCtx::new(peer.ip()), &service, &body, true).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_an_authenticate_call() {
        let xml = br#"<?xml version='1.0'?>
<methodCall>
<methodName>authenticate</methodName>
<params>
<param><value><string>acme</string></value></param>
<param><value><string>planner &amp; bot</string></value></param>
<param><value>untyped &#233;</value></param>
<param><value><struct></struct></value></param>
</params>
</methodCall>"#;
        let (method, params) = parse_method_call(xml).unwrap();
        assert_eq!(method, "authenticate");
        assert_eq!(
            params,
            vec![
                json!("acme"),
                json!("planner & bot"),
                json!("untyped é"),
                json!({})
            ]
        );
    }

    #[test]
    fn parses_every_value_type() {
        let xml = br#"<methodCall><methodName>m</methodName><params>
<param><value><array><data>
 <value><int>7</int></value><value><i4>-3</i4></value><value><boolean>1</boolean></value>
 <value><double>2.5</double></value><value><nil/></value>
 <value><dateTime.iso8601>20250301T08:00:00</dateTime.iso8601></value>
 <value><base64>aGVs
bG8=</base64></value>
 <value><string>  keep spaces </string></value>
 <value><struct><member><name>a</name><value><array><data></data></array></value></member></struct></value>
</data></array></value></param></params></methodCall>"#;
        let (_, params) = parse_method_call(xml).unwrap();
        assert_eq!(
            params[0],
            json!([7, -3, true, 2.5, null, "2025-03-01 08:00:00", "aGVsbG8=", "  keep spaces ", {"a": []}])
        );
    }

    #[test]
    fn refuses_malformed_documents() {
        assert!(parse_method_call(b"<methodCall><methodName>x</methodName>").is_err());
        assert!(parse_method_call(b"not xml").is_err());
        assert!(parse_method_call(b"<methodResponse/>").is_err());
        let bomb = br#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><methodCall><methodName>&lol;</methodName></methodCall>"#;
        assert!(parse_method_call(bomb).is_err());
    }

    /// Found by the `xmlrpc` fuzz target: deep nesting overflowed the stack.
    #[test]
    fn deep_nesting_is_refused_without_exhausting_the_stack() {
        let call = |levels: usize, open: &str, close: &str| {
            format!(
                "<methodCall><methodName>m</methodName><params><param>{}<value><int>1</int></value>{}</param></params></methodCall>",
                open.repeat(levels),
                close.repeat(levels)
            )
        };
        let array = ("<value><array><data>", "</data></array></value>");
        std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || {
                for (open, close) in [array, ("<x>", "</x>"), ("<x>", "")] {
                    let err = parse_method_call(call(200_000, open, close).as_bytes()).unwrap_err();
                    assert_eq!(err.0, "elements nest deeper than 400 levels");
                }
                // A value 128 levels deep, as deep as JSON-RPC takes, still parses.
                let (_, params) =
                    parse_method_call(call(128, array.0, array.1).as_bytes()).unwrap();
                let mut value = &params[0];
                for _ in 0..128 {
                    value = &value[0];
                }
                assert_eq!(value, &json!(1));
            })
            .expect("spawning a thread")
            .join()
            .expect("the parser panicked or overflowed its stack");
    }

    #[test]
    fn encodes_responses_and_refuses_none_and_big_ints() {
        let xml = encode_response(
            &json!({"id": 7, "name": "A<B> & \u{1}C", "ok": true, "qty": 12.0, "ids": [1, 2]}),
        )
        .unwrap();
        assert!(
            xml.contains("<name>name</name>\n<value><string>A&lt;B&gt; &amp; C</string></value>")
        );
        assert!(xml.contains("<value><double>12.0</double></value>"));
        assert!(xml.contains("<value><boolean>1</boolean></value>"));
        assert!(xml.starts_with(
            "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><struct>"
        ));
        assert_eq!(encode_response(&Value::Null), Err(MarshalError::None));
        assert_eq!(
            encode_response(&json!(1_i64 << 31)),
            Err(MarshalError::IntOverflow)
        );
        assert!(encode_response(&json!((1_i64 << 31) - 1)).is_ok());
    }

    #[test]
    fn encoded_values_parse_back() {
        // NEL and U+2028 are no line endings in XML 1.0.
        let value = json!([1, "two", false, 3.25, {"nested": ["x", {"y": -1}]}, "a\u{85}b\u{2028}c", {"\u{85}": 1}]);
        let response = encode_response(&value).unwrap();
        let call = response
            .replace("methodResponse", "methodCall")
            .replace("<params>", "<methodName>echo</methodName><params>");
        let (_, params) = parse_method_call(call.as_bytes()).unwrap();
        assert_eq!(params[0], value);
        // A carriage return is a line end, in text and CDATA alike.
        let xml = b"<methodCall><methodName>m</methodName><params><param><value><string>a\r\nb\rc<![CDATA[d\r\ne]]></string></value></param></params></methodCall>";
        assert_eq!(parse_method_call(xml).unwrap().1[0], json!("a\nb\ncd\ne"));
    }

    #[test]
    fn faults_have_code_and_string() {
        let xml = encode_fault(&json!(3), "Access Denied");
        assert!(xml.contains("<name>faultCode</name>\n<value><int>3</int></value>"));
        assert!(
            xml.contains("<name>faultString</name>\n<value><string>Access Denied</string></value>")
        );
        let legacy = encode_fault(&json!("warning -- AccessError\n\nno"), "");
        assert!(legacy.contains("<string>warning -- AccessError\n\nno</string>"));
        // A code that cannot marshal goes as text, in a well-formed document.
        let odd = encode_fault(&json!([1_i64 << 31, null]), "x");
        assert!(odd.contains("<value><string>[2147483648,null]</string></value>"));
        let call = odd
            .replace("methodResponse", "methodCall")
            .replace("<fault>", "<methodName>m</methodName><fault>");
        assert!(parse_method_call(call.as_bytes()).is_ok());
    }
}
