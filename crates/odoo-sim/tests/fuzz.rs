//! Fuzz targets `xmlrpc` and `jsonrpc`: the bytes Odoo's protocols carry, on
//! both sides. See docs/reference/testing.md#fuzzing.
//!
//! `xmlrpc`: the simulator's XML-RPC request parser on any bytes and on
//! generated documents (deep nesting, huge numbers, bad base64 and dates,
//! entities, unclosed tags) never panics or exhausts the stack; every value
//! XML-RPC can carry comes back from the simulator's encoder through its
//! parser; what it cannot carry (None, ints past 32 bits) is refused.
//!
//! `jsonrpc`: the simulator's JSON-RPC envelope parser on any bytes; generated
//! `execute_kw` and JSON-2 calls through the simulator's ORM; its answers,
//! encoded as it sends them, decoded by the client (`odoo-client`) into the
//! same value or a typed error; the client's decoding of any answer and of
//! the records it reads.

#[path = "../../../tests/fuzz/harness.rs"]
mod harness;

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderMap, HeaderValue, header::CONTENT_TYPE};
use odoo_client::RecordExt;
use odoo_client::error::CallTarget;
use odoo_client::transport::{decode_json2_answer, decode_jsonrpc_answer};
use odoo_client::values::{parse_datetime, returned_id};
use odoo_client::{Record, ServerVersion};
use odoo_sim::rpc::RpcError;
use odoo_sim::rpc::jsonrpc::{error_response, parse_envelope, result_response};
use odoo_sim::rpc::xmlrpc::{MarshalError, encode_fault, encode_response, parse_method_call};
use odoo_sim::{Database, DatasetParams, OdooVersion, SimConfig};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

// ---------------------------------------------------------------- xmlrpc

const XML_TOKENS: &[&str] = &[
    "<methodCall>",
    "</methodCall>",
    "<methodName>",
    "</methodName>",
    "<params>",
    "</params>",
    "<param>",
    "</param>",
    "<value>",
    "</value>",
    "<int>",
    "</int>",
    "<i4>",
    "<i8>",
    "<boolean>",
    "<string>",
    "</string>",
    "<double>",
    "<dateTime.iso8601>",
    "<base64>",
    "<nil/>",
    "<array>",
    "<data>",
    "</data>",
    "</array>",
    "<struct>",
    "<member>",
    "<name>",
    "</name>",
    "</member>",
    "</struct>",
    "<",
    ">",
    "/>",
    "</",
    "&amp;",
    "&lt;",
    "&#233;",
    "&#x1F600;",
    "&#0;",
    "&#xD800;",
    "&#99999999999;",
    "&bogus;",
    "&",
    "<![CDATA[",
    "]]>",
    "<!-- x -->",
    "<?pi x?>",
    "<?xml version='1.0'?>",
    "<!DOCTYPE x>",
    "<x:value>",
    "<value a='1'>",
    "\"",
    "'",
    "=",
    "99999999999999999999",
    "-9223372036854775808",
    "1e309",
    "NaN",
    "inf",
    "2025-13-45T99:99:99",
    "20250301T08:00:00",
    "aGVsbG8=",
    "!!!",
    "\u{0}",
    "\u{fffe}",
    "é",
    "\r\n",
];

const XML_NAMES: &[&str] = &[
    "methodCall",
    "methodName",
    "params",
    "param",
    "value",
    "int",
    "i4",
    "i8",
    "boolean",
    "string",
    "double",
    "dateTime.iso8601",
    "base64",
    "nil",
    "array",
    "data",
    "struct",
    "member",
    "name",
    "x",
    "ex:nil",
];

/// A generated XML node; rendering may break it on purpose.
#[derive(Debug, Clone)]
enum Node {
    Element(&'static str, Vec<Node>),
    Text(String),
}

fn node() -> impl Strategy<Value = Node> {
    let text = prop_oneof![
        harness::token_soup(&[
            "1",
            "0",
            "-7",
            "2.5",
            "1e309",
            "99999999999999999999",
            "abc",
            "20250301T08:00:00",
            "2025-03-01T08:00:00",
            "aGVs bG8=",
            "&amp;",
            "&#65;",
            "&nope;",
            "<![CDATA[<x>]]>",
            " ",
            "\n",
        ]),
        harness::json_string(),
    ]
    .prop_map(Node::Text);
    text.prop_recursive(8, 96, 6, |inner| {
        (
            proptest::sample::select(XML_NAMES),
            proptest::collection::vec(inner, 0..5),
        )
            .prop_map(|(name, children)| Node::Element(name, children))
    })
}

/// How a rendered document goes wrong, if it does.
#[derive(Debug, Clone, Copy)]
enum Defect {
    None,
    /// Stop after this many bytes: unclosed tags.
    Truncate(usize),
    /// An end tag with the wrong name.
    WrongEnd,
    /// Text after the document element.
    Junk,
}

fn render(node: &Node, out: &mut String) {
    match node {
        Node::Text(text) => out.push_str(text),
        Node::Element(name, children) if children.is_empty() => {
            out.push('<');
            out.push_str(name);
            out.push_str("/>");
        }
        Node::Element(name, children) => {
            out.push('<');
            out.push_str(name);
            out.push('>');
            for child in children {
                render(child, out);
            }
            out.push_str("</");
            out.push_str(name);
            out.push('>');
        }
    }
}

fn document(root: &Node, defect: Defect) -> String {
    let mut out = String::from(
        "<?xml version='1.0'?>\n<methodCall><methodName>m</methodName><params><param>",
    );
    render(root, &mut out);
    out.push_str("</param></params></methodCall>");
    match defect {
        Defect::None => {}
        Defect::Truncate(n) => {
            let mut cut = n.min(out.len());
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
        }
        Defect::WrongEnd => {
            if let Some(at) = out.rfind("</value>") {
                out.replace_range(at..at + 8, "</valeu>");
            }
        }
        Defect::Junk => out.push_str("<methodCall/>"),
    }
    out
}

/// Nesting far past any limit: value, array, data, value, ...
fn deep(levels: usize, unit: &str, close: &str) -> String {
    format!(
        "<methodCall><methodName>m</methodName><params><param>{}<value><int>1</int></value>{}</param></params></methodCall>",
        unit.repeat(levels),
        close.repeat(levels)
    )
}

/// Values XML-RPC can carry: no None, ints of 32 bits, strings without the
/// control characters XML 1.0 cannot hold (a carriage return becomes a line
/// feed in any XML parser).
fn xml_value() -> impl Strategy<Value = Value> {
    let text = "[^\\x00-\\x08\\x0b-\\x1f]{0,12}";
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| {
            serde_json::Number::from_f64(f).map(Value::Number)
        }),
        prop_oneof![
            Just(3.0f64),
            Just(-0.0),
            Just(1e16),
            Just(0.1),
            Just(1e-320)
        ]
        .prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        text.prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((text, inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// A response document turned into the call the parser reads.
fn as_call(response: &str) -> String {
    response
        .replace("methodResponse", "methodCall")
        .replacen("<params>", "<methodName>echo</methodName><params>", 1)
        .replacen("<fault>", "<methodName>echo</methodName><fault>", 1)
}

/// Whether `value` holds something XML-RPC cannot carry.
fn unmarshallable(value: &Value) -> bool {
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            Value::Null => return true,
            Value::Number(n)
                if n.as_i64().is_some_and(|i| i32::try_from(i).is_err())
                    || (n.is_u64() && n.as_i64().is_none()) =>
            {
                return true;
            }
            Value::Array(items) => pending.extend(items),
            Value::Object(map) => pending.extend(map.values()),
            _ => {}
        }
    }
    false
}

/// Whether every string in `value` survives XML unchanged.
fn xml_clean(value: &Value) -> bool {
    let clean = |s: &str| {
        !s.chars()
            .any(|c| (c as u32) < 0x20 && c != '\t' && c != '\n')
    };
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            Value::String(s) if !clean(s) => return false,
            Value::Array(items) => pending.extend(items),
            Value::Object(map) => {
                if !map.keys().all(|k| clean(k)) {
                    return false;
                }
                pending.extend(map.values());
            }
            _ => {}
        }
    }
    true
}

/// The simulator's encoder and parser agree on `value`.
fn check_xml_round_trip(value: &Value) -> Result<(), TestCaseError> {
    match encode_response(value) {
        Ok(xml) => {
            prop_assert!(!unmarshallable(value), "encoded {}", value);
            let (_, params) = parse_method_call(as_call(&xml).as_bytes())
                .map_err(|e| TestCaseError::fail(format!("own answer unreadable: {e}\n{xml}")))?;
            if xml_clean(value) {
                prop_assert_eq!(params.len(), 1);
                prop_assert_eq!(&params[0], value, "through {}", xml);
            }
        }
        Err(MarshalError::None | MarshalError::IntOverflow) => {
            prop_assert!(unmarshallable(value), "refused {}", value);
        }
    }
    Ok(())
}

fn check_xml_bytes(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Err(err) = parse_method_call(bytes) {
        prop_assert!(!err.0.is_empty());
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum XmlInput {
    Bytes(Vec<u8>),
    Tree(Node, Defect),
    Deep(usize, &'static str, &'static str),
    Value(Value),
    Any(Value),
    Fault(Value, String),
}

fn xml_input() -> impl Strategy<Value = XmlInput> {
    let defect = prop_oneof![
        4 => Just(Defect::None),
        2 => (0usize..400).prop_map(Defect::Truncate),
        1 => Just(Defect::WrongEnd),
        1 => Just(Defect::Junk),
    ];
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..200).prop_map(XmlInput::Bytes),
        3 => harness::mutated("xmlrpc", XML_TOKENS).prop_map(XmlInput::Bytes),
        2 => harness::token_soup(XML_TOKENS).prop_map(|s| XmlInput::Bytes(s.into_bytes())),
        3 => (node(), defect).prop_map(|(n, d)| XmlInput::Tree(n, d)),
        1 => (
            prop_oneof![0usize..600, Just(20_000), Just(200_000)],
            proptest::sample::select(
                &[
                    ("<value><array><data>", "</data></array></value>"),
                    ("<value><struct><member><name>a</name>", "</member></struct></value>"),
                    ("<x>", "</x>"),
                    ("<x>", ""),
                ][..]
            )
        )
            .prop_map(|(n, (open, close))| XmlInput::Deep(n, open, close)),
        3 => xml_value().prop_map(XmlInput::Value),
        1 => harness::json_value().prop_map(XmlInput::Any),
        1 => (harness::json_value(), any::<String>()).prop_map(|(c, m)| XmlInput::Fault(c, m)),
    ]
}

fn check_xml(input: XmlInput) -> Result<(), TestCaseError> {
    match input {
        XmlInput::Bytes(bytes) => check_xml_bytes(&bytes),
        XmlInput::Tree(root, defect) => check_xml_bytes(document(&root, defect).as_bytes()),
        XmlInput::Deep(levels, open, close) => {
            check_xml_bytes(deep(levels, open, close).as_bytes())
        }
        XmlInput::Value(value) | XmlInput::Any(value) => check_xml_round_trip(&value),
        XmlInput::Fault(code, message) => {
            let xml = encode_fault(&code, &message);
            parse_method_call(as_call(&xml).as_bytes())
                .map_err(|e| TestCaseError::fail(format!("own fault unreadable: {e}\n{xml}")))?;
            Ok(())
        }
    }
}

#[test]
fn fuzz_xmlrpc() {
    harness::fuzz("xmlrpc", 3000, xml_input(), check_xml);
}

#[test]
fn xmlrpc_corpus() {
    harness::replay("xmlrpc", |bytes| {
        if let Err(failure) = check_xml_bytes(bytes) {
            panic!("{failure}");
        }
    });
}

// --------------------------------------------------------------- jsonrpc

const JSON_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    "\\u",
    "\\ud800",
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1e400",
    "18446744073709551616",
    "\"jsonrpc\"",
    "\"2.0\"",
    "\"params\"",
    "\"id\"",
    "\"service\"",
    "\"object\"",
    "\"common\"",
    "\"db\"",
    "\"method\"",
    "\"execute_kw\"",
    "\"execute\"",
    "\"args\"",
    "\"error\"",
    "\"result\"",
    "\"data\"",
    "\"name\"",
    "\"message\"",
    "\"code\"",
    "\"search_read\"",
    "\"res.partner\"",
    "\"odoo.exceptions.AccessError\"",
    "\"domain\"",
    "\"fields\"",
    "\"limit\"",
    "\"context\"",
    "[[",
    "]]",
    "é",
    " ",
];

const MODELS: &[&str] = &[
    "res.partner",
    "product.product",
    "product.template",
    "purchase.order",
    "purchase.order.line",
    "sale.order",
    "sale.order.line",
    "stock.quant",
    "stock.move",
    "stock.warehouse",
    "stock.warehouse.orderpoint",
    "mail.activity",
    "mail.message",
    "base.automation",
    "ir.model.fields",
    "approval.request",
    "res.users",
    "no.such.model",
    "",
];

const METHODS: &[&str] = &[
    "search",
    "search_count",
    "search_read",
    "read",
    "create",
    "write",
    "unlink",
    "fields_get",
    "name_search",
    "load",
    "read_group",
    "formatted_read_group",
    "message_post",
    "action_feedback",
    "button_confirm",
    "button_approve",
    "action_confirm",
    "action_approve",
    "check_access_rights",
    "copy",
    "_private",
];

/// An argument an ORM method might be given.
fn orm_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => harness::domain_json(),
        2 => harness::valid_domain_json(),
        2 => proptest::collection::vec(
            prop_oneof![1i64..50, any::<i64>(), Just(0), Just(-1)].prop_map(Value::from),
            0..5
        )
        .prop_map(Value::Array),
        2 => proptest::collection::vec(
            proptest::sample::select(harness::FIELDS).prop_map(Value::from),
            0..5
        )
        .prop_map(Value::Array),
        2 => proptest::collection::vec(
            (
                proptest::sample::select(harness::FIELDS).prop_map(str::to_string),
                harness::json_value()
            ),
            0..4
        )
        .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        2 => harness::json_value(),
    ]
}

fn kwargs() -> impl Strategy<Value = Map<String, Value>> {
    let entry = prop_oneof![
        (Just("domain"), harness::domain_json()),
        (Just("fields"), orm_value()),
        (
            Just("limit"),
            prop_oneof![
                Just(json!(1)),
                Just(json!(0)),
                Just(json!(-1)),
                Just(json!(u64::MAX)),
                harness::json_value()
            ]
        ),
        (
            Just("offset"),
            prop_oneof![
                Just(json!(3)),
                Just(json!(-5)),
                Just(json!(i64::MAX)),
                harness::json_value()
            ]
        ),
        (
            Just("order"),
            prop_oneof![
                Just(json!("id desc")),
                Just(json!("name asc, id")),
                Just(json!("nonexistent desc")),
                harness::json_value()
            ]
        ),
        (Just("groupby"), orm_value()),
        (Just("aggregates"), orm_value()),
        (Just("lazy"), harness::json_value()),
        (Just("context"), harness::json_value()),
        (Just("vals"), orm_value()),
        (Just("body"), harness::json_value()),
        (Just("load"), harness::json_value()),
    ];
    proptest::collection::vec(entry, 0..4).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<Map<_, _>>()
    })
}

/// A JSON-RPC `execute_kw` (or JSON-2) call.
#[derive(Debug, Clone)]
struct OrmCall {
    json2: bool,
    model: &'static str,
    method: &'static str,
    args: Vec<Value>,
    kwargs: Map<String, Value>,
    id: Value,
}

fn orm_call() -> impl Strategy<Value = OrmCall> {
    (
        any::<bool>(),
        proptest::sample::select(MODELS),
        proptest::sample::select(METHODS),
        proptest::collection::vec(orm_value(), 0..4),
        kwargs(),
        prop_oneof![Just(json!(1)), Just(Value::Null), harness::json_value()],
    )
        .prop_map(|(json2, model, method, args, kwargs, id)| OrmCall {
            json2,
            model,
            method,
            args,
            kwargs,
            id,
        })
}

/// A call shaped as PlanOps and Odoo's own clients make them: a real model,
/// a well-formed domain, fields and paging of the right types.
fn sensible_call() -> impl Strategy<Value = OrmCall> {
    let ids = proptest::collection::vec(1i64..40, 0..4).prop_map(|ids| json!(ids));
    let fields = proptest::collection::vec(proptest::sample::select(harness::FIELDS), 0..4)
        .prop_map(|f| json!(f));
    let scalar = prop_oneof![
        Just(json!(false)),
        (-5i64..50).prop_map(Value::from),
        "[A-Za-z0-9 ]{0,8}".prop_map(Value::from),
        Just(json!("2025-03-01 08:00:00")),
    ];
    let vals = proptest::collection::vec(
        (
            proptest::sample::select(harness::FIELDS).prop_map(str::to_string),
            scalar,
        ),
        1..3,
    )
    .prop_map(|pairs| Value::Object(pairs.into_iter().collect()));
    (
        any::<bool>(),
        proptest::sample::select(&MODELS[..MODELS.len() - 2]),
        0usize..9,
        harness::valid_domain_json(),
        ids,
        fields,
        vals,
        (0i64..20, 0i64..5),
    )
        .prop_map(
            |(json2, model, which, domain, ids, fields, vals, (limit, offset))| {
                let paging =
                    json!({"fields": fields, "limit": limit, "offset": offset, "order": "id desc"});
                let paging = paging.as_object().cloned().unwrap_or_default();
                let (method, args, kwargs) = match which {
                    0 => ("search_read", vec![domain], paging),
                    1 => ("search", vec![domain], Map::new()),
                    2 => ("search_count", vec![domain], Map::new()),
                    3 => ("read", vec![ids, fields], Map::new()),
                    4 => ("fields_get", vec![], Map::new()),
                    5 => ("name_search", vec![json!("a")], Map::new()),
                    6 => (
                        "read_group",
                        vec![domain, fields.clone(), fields],
                        Map::new(),
                    ),
                    7 => ("write", vec![ids, vals], Map::new()),
                    _ => ("create", vec![vals], Map::new()),
                };
                OrmCall {
                    json2: json2 && method != "read" && method != "write",
                    model,
                    method,
                    args,
                    kwargs,
                    id: json!(1),
                }
            },
        )
}

const SIM_VERSION: OdooVersion = OdooVersion::V17;

/// A small simulated database, rebuilt now and then so that creates do not
/// make every later search slower.
struct Sim {
    db: Database,
    calls: usize,
}

impl Sim {
    fn new() -> Sim {
        let db = Database::new(SimConfig {
            version: SIM_VERSION,
            dataset: DatasetParams {
                products: 12,
                warehouses: 1,
                history_days: 20,
                suppliers: 3,
                customers: 4,
                open_sale_orders: 4,
                open_purchase_orders: 4,
                ..DatasetParams::default()
            },
            today: jiff::civil::date(2025, 3, 14),
            ..SimConfig::default()
        });
        Sim { db, calls: 0 }
    }
}

/// The body of one of the simulator's JSON-RPC answers, as sent.
fn body_of(response: axum::response::Response) -> Vec<u8> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    runtime
        .block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
        .map(|b| b.to_vec())
        .unwrap_or_default()
}

const ADMIN_UID: i64 = 2;

/// ORM calls that answered a value and an error, for the summary of a run:
/// a generator whose calls all fail early would test little.
static ANSWERED: AtomicU64 = AtomicU64::new(0);
static FAILED: AtomicU64 = AtomicU64::new(0);

/// The call through the simulator's handling and back through the client.
fn check_orm_call(sim: &RefCell<Sim>, call: &OrmCall) -> Result<(), TestCaseError> {
    let mut sim = sim.borrow_mut();
    sim.calls += 1;
    if sim.calls > 1500 {
        *sim = Sim::new();
    }
    let outcome = if call.json2 {
        let mut params = call.kwargs.clone();
        if let Some(first) = call.args.first() {
            params.insert("ids".into(), first.clone());
        }
        sim.db
            .execute_named(ADMIN_UID, call.model, call.method, params)
    } else {
        // Through the envelope, as /jsonrpc receives it.
        let body = json!({"jsonrpc": "2.0", "method": "call", "id": call.id, "params": {
            "service": "object", "method": "execute_kw",
            "args": ["planops", ADMIN_UID, "admin", call.model, call.method, call.args, call.kwargs]}});
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let envelope = parse_envelope("/jsonrpc", &headers, body.to_string().as_bytes())
            .map_err(|e| TestCaseError::fail(format!("own envelope refused: {e:?}")))?;
        let args = envelope.params["args"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let positional = args
            .get(5)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let kwargs = args
            .get(6)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        sim.db
            .execute_kw(ADMIN_UID, call.model, call.method, positional, kwargs)
    };
    sim.db.drain_webhooks();
    let target = Some(CallTarget {
        model: call.model,
        method: call.method,
    });
    let counter = if outcome.is_ok() { &ANSWERED } else { &FAILED };
    counter.fetch_add(1, Ordering::Relaxed);
    match outcome {
        Ok(value) => {
            let body = body_of(result_response(&call.id, &value));
            let decoded = decode_jsonrpc_answer("jsonrpc", 200, None, &body, target);
            prop_assert_eq!(
                decoded.ok(),
                Some(value.clone()),
                "the client reads another value"
            );
            check_records(&value);
            check_xml_round_trip(&value)?;
        }
        Err(err) => {
            let body = body_of(error_response(SIM_VERSION, &call.id, &RpcError::Orm(err)));
            let decoded = decode_jsonrpc_answer("jsonrpc", 200, None, &body, target);
            prop_assert!(decoded.is_err(), "an error read as {:?}", decoded);
        }
    }
    Ok(())
}

/// Every typed getter of the client on every field of the records in `value`.
fn check_records(value: &Value) {
    let records: Vec<&Map<String, Value>> = match value {
        Value::Array(items) => items.iter().filter_map(Value::as_object).collect(),
        Value::Object(map) => vec![map],
        _ => Vec::new(),
    };
    for record in records {
        let record: &Record = record;
        let _ = record.id();
        for name in record.keys() {
            let _ = record.many2one(name);
            let _ = record.str_field(name);
            let _ = record.number(name);
            let _ = record.bool_field(name);
            let _ = record.date(name);
            let _ = record.datetime(name);
            let _ = record.ids(name);
        }
    }
    let _ = returned_id(value);
    let _ = ServerVersion::from_version_info(value);
}

const STATUSES: &[u16] = &[
    200, 204, 301, 400, 401, 403, 404, 409, 422, 429, 500, 502, 503, 504, 599, 0, 1000,
];

const EXCEPTIONS: &[&str] = &[
    "odoo.exceptions.AccessError",
    "odoo.exceptions.AccessDenied",
    "odoo.exceptions.MissingError",
    "odoo.exceptions.UserError",
    "odoo.exceptions.ValidationError",
    "odoo.http.SessionExpiredException",
    "psycopg2.errors.SerializationFailure",
    "builtins.ValueError",
    "builtins.KeyError",
    "werkzeug.exceptions.NotFound",
    "",
];

/// An answer a server might send: any bytes, an envelope around any result,
/// or an error of any shape.
fn answer() -> impl Strategy<Value = (u16, Vec<u8>)> {
    let error = (
        prop_oneof![Just(json!(200)), Just(json!(100)), Just(json!(404)), harness::json_value()],
        harness::json_value(),
        proptest::sample::select(EXCEPTIONS),
        harness::json_string(),
        harness::json_value(),
    )
        .prop_map(|(code, message, name, text, arguments)| {
            json!({"jsonrpc": "2.0", "id": 1, "error": {"code": code, "message": message,
                   "data": {"name": name, "message": text, "arguments": arguments, "debug": "..."}}})
            .to_string()
            .into_bytes()
        });
    let json2_error = (proptest::sample::select(EXCEPTIONS), harness::json_string()).prop_map(
        |(name, message)| {
            json!({"name": name, "message": message, "arguments": [], "context": {}, "debug": ""})
                .to_string()
                .into_bytes()
        },
    );
    (
        proptest::sample::select(STATUSES),
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..120),
            harness::mutated("jsonrpc", JSON_TOKENS),
            harness::token_soup(JSON_TOKENS).prop_map(String::into_bytes),
            error,
            json2_error,
        ],
    )
}

#[derive(Debug, Clone)]
enum JsonInput {
    /// Bytes and a Content-Type for the simulator's envelope parser.
    Envelope(Vec<u8>, &'static str),
    Call(OrmCall),
    /// A result the client must read back as sent.
    Result(Value, Value),
    Answer(u16, Vec<u8>, Option<u64>),
    Record(Map<String, Value>),
    Text(String),
}

fn json_input() -> impl Strategy<Value = JsonInput> {
    let content_type = proptest::sample::select(
        &[
            "application/json",
            "application/json-rpc; charset=utf-8",
            "APPLICATION/JSON",
            "text/plain",
            "",
        ][..],
    );
    prop_oneof![
        3 => (
            prop_oneof![
                harness::mutated("jsonrpc", JSON_TOKENS),
                harness::token_soup(JSON_TOKENS).prop_map(String::into_bytes),
                proptest::collection::vec(any::<u8>(), 0..100),
            ],
            content_type
        )
            .prop_map(|(b, t)| JsonInput::Envelope(b, t)),
        3 => orm_call().prop_map(JsonInput::Call),
        4 => sensible_call().prop_map(JsonInput::Call),
        2 => (harness::json_value(), harness::json_value()).prop_map(|(id, v)| JsonInput::Result(id, v)),
        3 => (answer(), any::<Option<u64>>()).prop_map(|((s, b), r)| JsonInput::Answer(s, b, r)),
        1 => proptest::collection::vec(
            (
                prop_oneof![Just("id".to_string()), harness::json_string()],
                prop_oneof![
                    harness::json_value(),
                    "20[0-9]{2}-[0-9]{2}-[0-9]{2}( [0-9]{2}:[0-9]{2}:[0-9]{2})?".prop_map(Value::from),
                    Just(json!([7, "[SKU] Name"])),
                ]
            ),
            0..6
        )
        .prop_map(|pairs| JsonInput::Record(pairs.into_iter().collect())),
        1 => prop_oneof![any::<String>(), "[0-9]{1,3}(\\.[0-9a-z+~-]{0,6}){0,4}"].prop_map(JsonInput::Text),
    ]
}

fn check_envelope(bytes: &[u8], content_type: &str) {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(content_type) {
        headers.insert(CONTENT_TYPE, value);
    }
    let _ = parse_envelope("/jsonrpc", &headers, bytes);
}

fn check_answer(status: u16, body: &[u8], retry_after: Option<u64>) -> Result<(), TestCaseError> {
    let retry = retry_after.map(std::time::Duration::from_secs);
    let target = Some(CallTarget {
        model: "res.partner",
        method: "search_read",
    });
    for decoded in [
        decode_jsonrpc_answer("jsonrpc", status, retry, body, target),
        decode_json2_answer(status, retry, body, target),
    ] {
        if let Err(err) = decoded {
            prop_assert!(!err.to_string().is_empty());
        }
    }
    Ok(())
}

fn check_json(sim: &RefCell<Sim>, input: JsonInput) -> Result<(), TestCaseError> {
    match input {
        JsonInput::Envelope(bytes, content_type) => {
            check_envelope(&bytes, content_type);
            Ok(())
        }
        JsonInput::Call(call) => check_orm_call(sim, &call),
        JsonInput::Result(id, value) => {
            let body = body_of(result_response(&id, &value));
            prop_assert_eq!(
                decode_jsonrpc_answer("jsonrpc", 200, None, &body, None).ok(),
                Some(value.clone())
            );
            let json2 = serde_json::to_vec(&value).unwrap_or_default();
            prop_assert_eq!(
                decode_json2_answer(200, None, &json2, None).ok(),
                Some(value)
            );
            Ok(())
        }
        JsonInput::Answer(status, body, retry) => check_answer(status, &body, retry),
        JsonInput::Record(record) => {
            check_records(&Value::Object(record));
            Ok(())
        }
        JsonInput::Text(text) => {
            let _ = ServerVersion::parse(&text);
            let _ = parse_datetime(&text);
            Ok(())
        }
    }
}

#[test]
fn fuzz_jsonrpc() {
    let sim = RefCell::new(Sim::new());
    harness::fuzz("jsonrpc", 2000, json_input(), |input| {
        check_json(&sim, input)
    });
    println!(
        "fuzz jsonrpc: ORM calls answered {} values and {} errors",
        ANSWERED.load(Ordering::Relaxed),
        FAILED.load(Ordering::Relaxed)
    );
}

/// Corpus files are request or answer bodies: each goes through the
/// simulator's envelope parser and the client's decoding at every status.
#[test]
fn jsonrpc_corpus() {
    harness::replay("jsonrpc", |bytes| {
        check_envelope(bytes, "application/json");
        for status in STATUSES {
            if let Err(failure) = check_answer(*status, bytes, Some(1)) {
                panic!("{failure}");
            }
        }
    });
}
