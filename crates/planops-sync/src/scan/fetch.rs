//! Reads a detector's inputs from Odoo with as few calls as the data allows.
//!
//! Call budget of a scan over P products, W warehouses (pages of 500 records):
//!
//! | input | calls |
//! |---|---|
//! | warehouses + their internal locations | 2 |
//! | products + vendor price list lines | ⌈P/500⌉ + ⌈S/500⌉ |
//! | on hand + forecast (`qty_available`, `virtual_available` with `warehouse` (`warehouse_id` from 18) and `to_date` context) | W · ⌈P/500⌉ |
//! | demand history: one `read_group` on done customer moves by product × location × day | 1 |
//! | open moves (dated receipts and deliveries) | ⌈M/500⌉ |
//! | reordering rules with Odoo's computed figures | ⌈R/500⌉ |
//! | open purchase lines / done receipts (+ their lines and orders) | a few pages |
//! | open sales lines + their orders | a few pages |
//!
//! Nothing is ever read one product at a time. The pure halves (turning records and
//! groups into engine inputs) are separate functions, unit-tested below.
//!
//! Products, vendors, stock figures, open moves and orderpoints are always read
//! by [`super::snapshot`]: once in full for a scan without a cache, or, for a
//! scan handed a [`super::HistoryCache`], kept and after the first scan brought
//! up to date with what was written since: about a dozen calls whatever the
//! catalogue size. A focused event run handed the cache reads its products
//! over that snapshot (four calls), else directly. This module holds the
//! rest of the reads and the row parsers both use.

use std::collections::{BTreeMap, HashMap, HashSet};

use jiff::civil::Date;
use serde_json::{Map, Value, json};

use super::{ScanError, ScanMemory};
use odoo_client::domain::Domain;
use odoo_client::{
    Aggregate, Granularity, Group, GroupBy, OdooClient, OdooError, PageOptions, ReadGroupSpec,
    Record, RecordExt, SearchOptions,
};
use planops_api::rule::ExceptionRuleSpec;
use planops_engine::inputs::{
    DatedQty, DemandHistory, GenericRecord, Orderpoint, Product, PurchaseLine, ReceiptRecord,
    SaleLine, StockItem, SupplierInfo, Warehouse, add_days, days_between,
};
use planops_engine::params::FieldThresholdParams;
use planops_engine::{DetectorKind, InputNeeds, PlanningInput};

/// Records per `search_read` page and ids per `read` chunk.
pub(super) const PAGE: u64 = 500;

/// What to read for one rule, decided before any call.
#[derive(Debug, Clone)]
pub struct FetchPlan {
    /// Detector being fed.
    pub detector: DetectorKind,
    /// Inputs it reads.
    pub needs: InputNeeds,
    /// The scope's product domain (storable filter added at fetch time, per version).
    pub product_domain: Value,
    /// Warehouse codes in scope; empty means all.
    pub warehouse_codes: Vec<String>,
    /// Days of done demand to read, ending yesterday.
    pub history_days: u32,
    /// Days ahead for Odoo's `virtual_available` (`to_date` context).
    pub forecast_days: u32,
    /// Days of done receipts for measured lead times.
    pub receipt_history_days: u32,
    /// The field-threshold detector's model, domain and fields.
    pub field_threshold: Option<(FieldThresholdParams, Value)>,
    /// Day 0 of the plan.
    pub today: Date,
    /// Narrowed to an event's subjects: read directly, or over the snapshot a
    /// scan of the whole scope keeps (see [`super::snapshot`]).
    pub focused: bool,
    /// The event's products when `focused`.
    pub focus_products: Vec<i64>,
    /// The scope's product domain before any narrowing: what a snapshot of
    /// the scope is kept for.
    pub scope_domain: Value,
}

impl FetchPlan {
    /// The reads `spec` needs, with its domains parsed.
    pub fn for_rule(
        spec: &ExceptionRuleSpec,
        detector: DetectorKind,
        today: Date,
    ) -> Result<FetchPlan, ScanError> {
        let scope = spec.scope.clone().unwrap_or_default();
        let product_domain = match scope.product_domain.as_deref() {
            Some(text) => parse_domain("scope.productDomain", text)?,
            None => json!([]),
        };
        let d = &spec.detector;
        let history_days = d.history_days();
        let forecast_days = d.forecast_days();
        let field_threshold = match &d.field_threshold {
            Some(p) if detector == DetectorKind::FieldThreshold => {
                let domain = if p.domain.trim().is_empty() {
                    json!([])
                } else {
                    parse_domain("detector.fieldThreshold.domain", &p.domain)?
                };
                Some((p.clone(), domain))
            }
            _ => None,
        };
        Ok(FetchPlan {
            detector,
            needs: planops_engine::InputNeeds::of(detector),
            scope_domain: product_domain.clone(),
            product_domain,
            warehouse_codes: scope.warehouses,
            history_days,
            forecast_days,
            receipt_history_days: 365,
            field_threshold,
            today,
            focused: false,
            focus_products: Vec::new(),
        })
    }

    /// Narrows the plan to the subjects of `focus`.
    pub fn narrow_to(&mut self, focus: &super::Focus) {
        self.product_domain = super::Focus::narrow(&self.product_domain, &focus.products);
        self.focused = true;
        self.focus_products = focus.products.clone();
        if let Some((_, domain)) = &mut self.field_threshold {
            *domain = super::Focus::narrow(domain, &focus.records);
        }
    }
}

fn parse_domain(field: &'static str, text: &str) -> Result<Value, ScanError> {
    Domain::parse(text)
        .map(|d| d.to_json_value())
        .map_err(|e| ScanError::Domain {
            field,
            message: e.to_string(),
        })
}

/// The inputs read for one scan.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Engine input.
    pub input: PlanningInput,
    /// Memory for the next scan.
    pub memory: ScanMemory,
    /// What the stock snapshot did, when the detector reads stock.
    pub stock_snapshot: Option<super::snapshot::SnapshotStats>,
    detector: DetectorKind,
}

impl Fetched {
    /// Subjects the detector evaluates.
    pub fn subjects(&self) -> u64 {
        let n = match self.detector {
            DetectorKind::ProjectedStockout | DetectorKind::DemandSpike => self.input.items.len(),
            DetectorKind::SupplierDelay => self.input.purchase_lines.len(),
            DetectorKind::OrderAtRisk => self.input.sale_lines.len(),
            DetectorKind::FieldThreshold => self.input.records.len(),
        };
        n as u64
    }
}

pub(super) fn page_options() -> PageOptions {
    PageOptions::keyset(PAGE)
}

/// Reads everything `plan` asks for.
pub async fn fetch(
    client: &OdooClient,
    plan: &FetchPlan,
    memory: &ScanMemory,
) -> Result<Fetched, ScanError> {
    fetch_with(client, plan, memory, None).await
}

/// [`fetch`], with demand history served by `history` when given.
pub async fn fetch_with(
    client: &OdooClient,
    plan: &FetchPlan,
    memory: &ScanMemory,
    history: Option<(&super::HistoryCache, &super::HistoryKey)>,
) -> Result<Fetched, ScanError> {
    let mut input = PlanningInput::new(plan.today);
    let needs = plan.needs;
    let mut next_memory = ScanMemory::default();

    if let Some((params, domain)) = &plan.field_threshold {
        input.records = fetch_records(client, params, domain).await?;
        return Ok(Fetched {
            input,
            memory: next_memory,
            stock_snapshot: None,
            detector: plan.detector,
        });
    }

    // An event's products over the snapshot a scan of the scope keeps, when
    // there is one; else read as a scan reads them.
    let over_snapshot = match history {
        Some((cache, key)) if plan.focused && needs.stock_items => {
            super::snapshot::focused_stock(client, cache, key, plan).await?
        }
        _ => None,
    };
    let needs_warehouses = needs.stock_items || needs.sale_lines;
    let (warehouses, locations) = match &over_snapshot {
        Some(focused) => (focused.warehouses.clone(), focused.locations.clone()),
        None if needs_warehouses => fetch_warehouses(client, &plan.warehouse_codes).await?,
        None => (Vec::new(), HashMap::new()),
    };
    input.warehouses = warehouses;

    let mut stock_snapshot = None;
    let mut history_attached = false;
    if let Some(focused) = over_snapshot {
        stock_snapshot = Some(focused.stats);
        input.products = focused.products;
        input.items = focused.items;
        history_attached = focused.history_attached;
    } else if needs.products {
        let kept = history.filter(|_| needs.stock_items && !plan.focused);
        let view = match kept {
            Some((cache, key)) => {
                let identity = cache.database_identity(client, key).await?;
                cache
                    .snapshots()
                    .stock_view(client, &identity, plan, &input.warehouses, &locations)
                    .await?
            }
            None => super::snapshot::read_once(client, plan, &input.warehouses, &locations).await?,
        };
        tracing::debug!(
            rebuilt = view.stats.rebuilt,
            changed_products = view.stats.changed_products,
            "stock inputs"
        );
        stock_snapshot = Some(view.stats);
        input.products = view.products;
        input.items = view.items;
    }
    let product_ids: Vec<i64> = input.products.iter().map(|p| p.id).collect();

    if needs.stock_items && needs.demand_history && plan.history_days > 0 && !history_attached {
        let history = match history {
            Some((cache, key)) => {
                let products: HashSet<i64> = product_ids.iter().copied().collect();
                cache
                    .demand_history(
                        client,
                        key,
                        plan.today,
                        plan.history_days,
                        &products,
                        &locations,
                    )
                    .await?
                    .0
            }
            None => {
                let groups = fetch_demand_groups(client, plan, &product_ids, &locations).await?;
                demand_history(&groups, &locations, plan.today, plan.history_days)
            }
        };
        attach_history(&mut input.items, history);
    }
    if needs.purchase_lines {
        input.purchase_lines = fetch_purchase_lines(client, &product_ids, memory).await?;
        next_memory.purchase_dates = input
            .purchase_lines
            .iter()
            .map(|l| (l.id, l.date_planned))
            .collect();
    }
    if needs.receipt_history {
        input.receipt_history = fetch_receipts(client, plan, &product_ids, &input.products).await?;
    }
    if needs.sale_lines {
        input.sale_lines = fetch_sale_lines(client, &product_ids, &input.warehouses).await?;
    }
    Ok(Fetched {
        input,
        memory: next_memory,
        stock_snapshot,
        detector: plan.detector,
    })
}

/// Warehouses in scope and their internal locations (location id → warehouse id).
async fn fetch_warehouses(
    client: &OdooClient,
    codes: &[String],
) -> Result<(Vec<Warehouse>, HashMap<i64, i64>), ScanError> {
    let domain = if codes.is_empty() {
        json!([])
    } else {
        json!([["code", "in", codes]])
    };
    let rows = client
        .search_read(
            "stock.warehouse",
            &domain,
            &["id", "code"],
            &SearchOptions::default(),
        )
        .await
        .map_err(ScanError::odoo("warehouses"))?;
    let mut warehouses = Vec::with_capacity(rows.len());
    for row in &rows {
        warehouses.push(Warehouse {
            id: row.id().map_err(ScanError::odoo("warehouses"))?,
            code: row
                .str_field("code")
                .map_err(ScanError::odoo("warehouses"))?
                .unwrap_or_default()
                .to_string(),
        });
    }
    for code in codes {
        if !warehouses.iter().any(|w| &w.code == code) {
            return Err(ScanError::UnknownWarehouse(code.clone()));
        }
    }
    warehouses.sort_by_key(|w| w.id);
    let ids: Vec<i64> = warehouses.iter().map(|w| w.id).collect();
    let rows = client
        .search_read_all(
            "stock.location",
            &json!([["usage", "=", "internal"], ["warehouse_id", "in", ids]]),
            &["id", "warehouse_id"],
            &page_options(),
        )
        .await
        .map_err(ScanError::odoo("warehouse locations"))?;
    let mut locations = HashMap::with_capacity(rows.len());
    for row in &rows {
        let id = row.id().map_err(ScanError::odoo("warehouse locations"))?;
        if let Some(wh) = row
            .many2one("warehouse_id")
            .map_err(ScanError::odoo("warehouse locations"))?
        {
            locations.insert(id, wh.id);
        }
    }
    Ok((warehouses, locations))
}

/// Fields of `product.product` a scan reads.
pub(super) const PRODUCT_FIELDS: &[&str] = &[
    "id",
    "default_code",
    "name",
    "standard_price",
    "product_tmpl_id",
    "write_date",
];

/// Fields of `product.supplierinfo` a scan reads.
pub(super) const SELLER_FIELDS: &[&str] = &[
    "id",
    "partner_id",
    "product_tmpl_id",
    "product_id",
    "min_qty",
    "delay",
    "price",
    "sequence",
    "date_start",
    "date_end",
    "write_date",
];

/// The scope's domain restricted to storable products (the field differs by version).
pub(super) fn storable_domain(client: &OdooClient, scope: &Value) -> Result<Value, ScanError> {
    let storable = if client.info().version.major >= 18 {
        json!([["is_storable", "=", true]])
    } else {
        json!([["type", "=", "product"]])
    };
    and_domains(scope, &storable)
}

/// A product row and its template id (0 when Odoo sent none).
pub(super) fn product_from(row: &Record) -> Result<(Product, i64), OdooError> {
    let template = row.many2one("product_tmpl_id")?.map(|t| t.id);
    let product = Product {
        id: row.id()?,
        default_code: row.str_field("default_code")?.map(str::to_string),
        name: row.str_field("name")?.unwrap_or_default().to_string(),
        standard_price: row.number("standard_price")?,
        suppliers: Vec::new(),
    };
    Ok((product, template.unwrap_or_default()))
}

/// One vendor price list line: its template, the variant it is pinned to, if any,
/// and what the engine reads of it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) struct SellerLine {
    pub template: i64,
    pub variant: Option<i64>,
    pub info: SupplierInfo,
}

/// A `product.supplierinfo` row; `None` for a line without template or vendor.
pub(super) fn seller_line_from(row: &Record) -> Result<Option<SellerLine>, OdooError> {
    let (Some(template), Some(partner)) = (
        row.many2one("product_tmpl_id")?,
        row.many2one("partner_id")?,
    ) else {
        return Ok(None);
    };
    Ok(Some(SellerLine {
        template: template.id,
        variant: row.many2one("product_id")?.map(|p| p.id),
        info: SupplierInfo {
            id: row.id()?,
            partner_id: partner.id,
            partner_name: partner.name,
            min_qty: row.number("min_qty")?,
            delay_days: row.number("delay")?.max(0.0) as u32,
            price: row.number("price")?,
            sequence: row.number("sequence")? as i32,
            date_start: row.date("date_start")?,
            date_end: row.date("date_end")?,
        },
    }))
}

/// Gives each product the price list lines of its template (`templates[i]` is
/// the template of `products[i]`), except lines pinned to another variant.
pub(super) fn attach_seller_lines<'a>(
    products: &mut [Product],
    templates: &[i64],
    lines: impl IntoIterator<Item = &'a SellerLine>,
) {
    let mut by_template: HashMap<i64, Vec<&SellerLine>> = HashMap::new();
    for line in lines {
        by_template.entry(line.template).or_default().push(line);
    }
    for (product, template) in products.iter_mut().zip(templates) {
        if let Some(lines) = by_template.get(template) {
            product.suppliers = lines
                .iter()
                .filter(|line| line.variant.is_none_or(|v| v == product.id))
                .map(|line| line.info.clone())
                .collect();
        }
    }
}

/// `a AND b`, both JSON domains the scan built or parsed (so both are valid).
pub(super) fn and_domains(a: &Value, b: &Value) -> Result<Value, ScanError> {
    let parse = |d: &Value| {
        Domain::from_json_value(d).map_err(|e| ScanError::Domain {
            field: "scope.productDomain",
            message: e.to_string(),
        })
    };
    Ok(parse(a)?.and(&parse(b)?).to_json_value())
}

/// The context key that scopes product quantities to a warehouse. 18 renamed
/// it; a key the server does not read is silently ignored and every figure
/// comes back company-wide.
fn warehouse_context_key(client: &OdooClient) -> &'static str {
    if client.info().version.major >= 18 {
        "warehouse_id"
    } else {
        "warehouse"
    }
}

/// `client` reading `qty_available` and `virtual_available` as a scan plans
/// them: in `warehouse`, forecast to the end of the plan's forecast window.
pub(super) fn stock_figures_client(
    client: &OdooClient,
    plan: &FetchPlan,
    warehouse: i64,
) -> OdooClient {
    let to_date = add_days(plan.today, i64::from(plan.forecast_days));
    let mut context = Map::new();
    context.insert(warehouse_context_key(client).into(), json!(warehouse));
    context.insert("to_date".into(), json!(format!("{to_date} 23:59:59")));
    client.with_context(context)
}

/// One stock item per product × warehouse with Odoo's own on-hand and forecast.
pub(super) async fn fetch_stock_items(
    client: &OdooClient,
    plan: &FetchPlan,
    product_ids: &[i64],
    warehouses: &[Warehouse],
) -> Result<Vec<StockItem>, ScanError> {
    let mut items = Vec::with_capacity(product_ids.len() * warehouses.len());
    for warehouse in warehouses {
        let scoped = stock_figures_client(client, plan, warehouse.id);
        for chunk in product_ids.chunks(PAGE as usize) {
            let rows = scoped
                .read(
                    "product.product",
                    chunk,
                    &["id", "qty_available", "virtual_available"],
                )
                .await
                .map_err(ScanError::odoo("stock quantities"))?;
            for row in &rows {
                let what = || ScanError::odoo("stock quantities");
                items.push(StockItem {
                    product_id: row.id().map_err(what())?,
                    warehouse_id: warehouse.id,
                    on_hand: row.number("qty_available").map_err(what())?,
                    virtual_available: Some(row.number("virtual_available").map_err(what())?),
                    ..StockItem::default()
                });
            }
        }
    }
    Ok(items)
}

/// Demand as Odoo groups it: done moves from the scope's internal locations to
/// customers, summed per product × source location × day.
async fn fetch_demand_groups(
    client: &OdooClient,
    plan: &FetchPlan,
    product_ids: &[i64],
    locations: &HashMap<i64, i64>,
) -> Result<Vec<Group>, ScanError> {
    if product_ids.is_empty() || locations.is_empty() {
        return Ok(Vec::new());
    }
    let start = add_days(plan.today, -i64::from(plan.history_days));
    let mut location_ids: Vec<i64> = locations.keys().copied().collect();
    location_ids.sort_unstable();
    let domain = json!([
        ["state", "=", "done"],
        ["product_id", "in", product_ids],
        ["location_id", "in", location_ids],
        ["location_dest_id.usage", "=", "customer"],
        ["date", ">=", format!("{start} 00:00:00")],
        ["date", "<", format!("{} 00:00:00", plan.today)],
    ]);
    let spec = ReadGroupSpec::new(
        domain,
        vec![
            GroupBy::field("product_id"),
            GroupBy::field("location_id"),
            GroupBy::date("date", Granularity::Day),
        ],
        // `product_qty`: the move's demand in the product's unit (stored, so
        // groupable); `product_uom_qty` is in whatever unit the move counts in.
        vec![Aggregate::sum("product_qty")],
    );
    client
        .read_group("stock.move", &spec)
        .await
        .map_err(ScanError::odoo("demand history"))
}

/// Dense daily series per product × warehouse, ending yesterday, from the groups
/// of [`fetch_demand_groups`].
pub fn demand_history(
    groups: &[Group],
    locations: &HashMap<i64, i64>,
    today: Date,
    days: u32,
) -> HashMap<(i64, i64), DemandHistory> {
    let qty = Aggregate::sum("product_qty");
    let end = add_days(today, -1);
    let start = add_days(today, -i64::from(days));
    let mut out: HashMap<(i64, i64), DemandHistory> = HashMap::new();
    for group in groups {
        let product = group.key("product_id").and_then(|k| k.value.as_i64());
        let location = group.key("location_id").and_then(|k| k.value.as_i64());
        let day = group
            .key("date:day")
            .and_then(|k| k.value.as_str())
            .and_then(|s| s.get(..10))
            .and_then(|s| s.parse::<Date>().ok());
        let (Some(product), Some(location), Some(day)) = (product, location, day) else {
            continue;
        };
        let Some(&warehouse) = locations.get(&location) else {
            continue;
        };
        let index = days_between(start, day);
        if index < 0 || index >= i64::from(days) {
            continue;
        }
        let series = out
            .entry((product, warehouse))
            .or_insert_with(|| DemandHistory {
                end: Some(end),
                daily: vec![0.0; days as usize],
            });
        series.daily[index as usize] += group.aggregate(&qty) as f32;
    }
    out
}

pub(super) fn attach_history(
    items: &mut [StockItem],
    mut history: HashMap<(i64, i64), DemandHistory>,
) {
    for item in items {
        if let Some(series) = history.remove(&(item.product_id, item.warehouse_id)) {
            item.history = series;
        }
    }
}

/// States of a `stock.move` that is still to happen.
pub(super) const OPEN_MOVE_STATES: [&str; 4] =
    ["waiting", "confirmed", "partially_available", "assigned"];

/// Fields of `stock.move` an open-move read needs.
pub(super) const MOVE_FIELDS: &[&str] = &[
    "id",
    "product_id",
    "product_qty",
    "date",
    "location_id",
    "location_dest_id",
    "state",
    "write_date",
];

/// Moves still to happen of `product_ids`, into or out of the scope's locations.
pub(super) fn open_moves_domain(product_ids: &[i64], locations: &HashMap<i64, i64>) -> Value {
    let mut location_ids: Vec<i64> = locations.keys().copied().collect();
    location_ids.sort_unstable();
    json!([
        ["state", "in", OPEN_MOVE_STATES],
        ["product_id", "in", product_ids],
        "|",
        ["location_id", "in", location_ids],
        ["location_dest_id", "in", location_ids]
    ])
}

/// A dated move between warehouses as the projection needs it: into
/// `to_warehouse` (a receipt there), out of `from_warehouse` (a delivery there).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) struct OpenMove {
    pub product: i64,
    pub date: Date,
    pub qty: f64,
    pub from_warehouse: Option<i64>,
    pub to_warehouse: Option<i64>,
}

/// A `stock.move` row seen through the scope's locations. `None` when it has no
/// product or date, or stays inside one warehouse (or outside all of them).
pub(super) fn open_move_from(
    row: &Record,
    locations: &HashMap<i64, i64>,
) -> Result<Option<OpenMove>, OdooError> {
    let Some(product) = row.many2one("product_id")? else {
        return Ok(None);
    };
    let Some(when) = row.datetime("date")? else {
        return Ok(None);
    };
    let warehouse_of = |field: &str| -> Result<Option<i64>, OdooError> {
        Ok(row
            .many2one(field)?
            .and_then(|l| locations.get(&l.id).copied()))
    };
    let (from_warehouse, to_warehouse) = (
        warehouse_of("location_id")?,
        warehouse_of("location_dest_id")?,
    );
    if from_warehouse == to_warehouse {
        return Ok(None);
    }
    Ok(Some(OpenMove {
        product: product.id,
        date: when.to_zoned(jiff::tz::TimeZone::UTC).date(),
        qty: row.number("product_qty")?,
        from_warehouse,
        to_warehouse,
    }))
}

/// Sorts open moves into dated receipts and deliveries of each item's warehouse. A
/// move inside one warehouse is neither; a transfer between two is both.
pub(super) fn attach_moves<'a>(
    items: &mut [StockItem],
    moves: impl IntoIterator<Item = &'a OpenMove>,
) {
    let index: HashMap<(i64, i64), usize> = items
        .iter()
        .enumerate()
        .map(|(i, item)| ((item.product_id, item.warehouse_id), i))
        .collect();
    for m in moves {
        let dated = DatedQty {
            date: m.date,
            qty: m.qty,
        };
        if let Some(&i) = m.to_warehouse.and_then(|w| index.get(&(m.product, w))) {
            items[i].receipts.push(dated);
        }
        if let Some(&i) = m.from_warehouse.and_then(|w| index.get(&(m.product, w))) {
            items[i].deliveries.push(dated);
        }
    }
    for item in items {
        item.receipts.sort_by_key(|d| d.date);
        item.deliveries.sort_by_key(|d| d.date);
    }
}

/// The reordering rules of `product_ids` in `warehouses`.
pub(super) fn orderpoints_domain(product_ids: &[i64], warehouses: &[Warehouse]) -> Value {
    let warehouse_ids: Vec<i64> = warehouses.iter().map(|w| w.id).collect();
    json!([
        ["product_id", "in", product_ids],
        ["warehouse_id", "in", warehouse_ids]
    ])
}

/// A stock item's product id and warehouse id.
pub(super) type ItemKey = (i64, i64);

/// Fields of `stock.warehouse.orderpoint` a scan reads, as the version names them.
pub(super) fn orderpoint_fields(client: &OdooClient) -> Vec<&'static str> {
    let v19 = client.info().version.major >= 19;
    let mut fields = vec![
        "id",
        "product_id",
        "warehouse_id",
        "product_min_qty",
        "product_max_qty",
        "qty_forecast",
        "qty_to_order",
        "snoozed_until",
        "write_date",
    ];
    if v19 {
        fields.push("lead_days");
    } else {
        fields.extend(["lead_days_date", "qty_multiple"]);
    }
    fields
}

/// A reordering rule row, keyed by product × warehouse; `None` without either.
pub(super) fn orderpoint_from(
    client: &OdooClient,
    row: &Record,
    today: Date,
) -> Result<Option<(ItemKey, Orderpoint)>, ScanError> {
    let what = || ScanError::odoo("reordering rules");
    let (Some(product), Some(warehouse)) = (
        row.many2one("product_id").map_err(what())?,
        row.many2one("warehouse_id").map_err(what())?,
    ) else {
        return Ok(None);
    };
    let lead_days = if client.info().version.major >= 19 {
        row.get("lead_days")
            .and_then(Value::as_f64)
            .map(|d| d.max(0.0) as u32)
    } else {
        row.date("lead_days_date")
            .map_err(what())?
            .map(|d| days_between(today, d).max(0) as u32)
    };
    Ok(Some((
        (product.id, warehouse.id),
        Orderpoint {
            id: row.id().map_err(what())?,
            min_qty: row.number("product_min_qty").map_err(what())?,
            max_qty: row.number("product_max_qty").map_err(what())?,
            qty_multiple: row.number("qty_multiple").map_err(what())?,
            qty_forecast: row.get("qty_forecast").and_then(Value::as_f64),
            qty_to_order: row.get("qty_to_order").and_then(Value::as_f64),
            lead_days,
            snoozed_until: row.date("snoozed_until").map_err(what())?,
        },
    )))
}

/// Confirmed purchase lines not fully received.
async fn fetch_purchase_lines(
    client: &OdooClient,
    product_ids: &[i64],
    memory: &ScanMemory,
) -> Result<Vec<PurchaseLine>, ScanError> {
    if product_ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client
        .search_read_all(
            "purchase.order.line",
            &json!([
                ["state", "in", ["purchase", "done"]],
                ["product_id", "in", product_ids]
            ]),
            &[
                "id",
                "order_id",
                "partner_id",
                "product_id",
                "product_qty",
                "qty_received",
                "price_unit",
                "date_planned",
            ],
            &page_options(),
        )
        .await
        .map_err(ScanError::odoo("open purchase lines"))?;
    purchase_lines_from(&rows, memory).map_err(ScanError::odoo("open purchase lines"))
}

/// Open lines (received less than ordered) with their last-seen planned date.
pub fn purchase_lines_from(
    rows: &[Record],
    memory: &ScanMemory,
) -> Result<Vec<PurchaseLine>, OdooError> {
    let mut lines = Vec::new();
    for row in rows {
        let qty_ordered = row.number("product_qty")?;
        let qty_received = row.number("qty_received")?;
        if qty_received >= qty_ordered {
            continue;
        }
        let (Some(order), Some(partner), Some(product), Some(planned)) = (
            row.many2one("order_id")?,
            row.many2one("partner_id")?,
            row.many2one("product_id")?,
            row.datetime("date_planned")?,
        ) else {
            continue;
        };
        let id = row.id()?;
        lines.push(PurchaseLine {
            id,
            order_name: order.name,
            partner_id: partner.id,
            partner_name: partner.name,
            product_id: product.id,
            warehouse_id: None,
            qty_ordered,
            qty_received,
            price_unit: row.number("price_unit")?,
            date_planned: planned.to_zoned(jiff::tz::TimeZone::UTC).date(),
            previous_date_planned: memory.purchase_dates.get(&id).copied(),
        });
    }
    Ok(lines)
}

/// Done receipts of purchase lines, with order and promised dates.
async fn fetch_receipts(
    client: &OdooClient,
    plan: &FetchPlan,
    product_ids: &[i64],
    products: &[Product],
) -> Result<Vec<ReceiptRecord>, ScanError> {
    if product_ids.is_empty() {
        return Ok(Vec::new());
    }
    let since = add_days(plan.today, -i64::from(plan.receipt_history_days));
    let moves = client
        .search_read_all(
            "stock.move",
            &json!([
                ["state", "=", "done"],
                ["purchase_line_id", "!=", false],
                ["product_id", "in", product_ids],
                ["date", ">=", format!("{since} 00:00:00")]
            ]),
            &["id", "purchase_line_id", "product_id", "date"],
            &page_options(),
        )
        .await
        .map_err(ScanError::odoo("done receipts"))?;
    let what = || ScanError::odoo("done receipts");
    let mut line_ids: Vec<i64> = Vec::new();
    for m in &moves {
        if let Some(l) = m.many2one("purchase_line_id").map_err(what())? {
            line_ids.push(l.id);
        }
    }
    line_ids.sort_unstable();
    line_ids.dedup();
    let lines = read_chunked(
        client,
        "purchase.order.line",
        &line_ids,
        &["id", "order_id", "partner_id", "date_planned"],
    )
    .await
    .map_err(what())?;
    let mut order_ids: Vec<i64> = Vec::new();
    for l in &lines {
        if let Some(o) = l.many2one("order_id").map_err(what())? {
            order_ids.push(o.id);
        }
    }
    order_ids.sort_unstable();
    order_ids.dedup();
    let orders = read_chunked(
        client,
        "purchase.order",
        &order_ids,
        &["id", "date_approve", "date_order"],
    )
    .await
    .map_err(what())?;
    receipts_from(&moves, &lines, &orders, products).map_err(what())
}

/// Joins done moves to their purchase lines and orders.
pub fn receipts_from(
    moves: &[Record],
    lines: &[Record],
    orders: &[Record],
    products: &[Product],
) -> Result<Vec<ReceiptRecord>, OdooError> {
    let utc = |t: jiff::Timestamp| t.to_zoned(jiff::tz::TimeZone::UTC).date();
    let mut ordered_on: HashMap<i64, Date> = HashMap::new();
    for o in orders {
        let day = match o.datetime("date_approve")? {
            Some(t) => Some(t),
            None => o.datetime("date_order")?,
        };
        if let Some(t) = day {
            ordered_on.insert(o.id()?, utc(t));
        }
    }
    let mut line_info: HashMap<i64, (i64, i64, Option<Date>)> = HashMap::new();
    for l in lines {
        let (Some(order), Some(partner)) = (l.many2one("order_id")?, l.many2one("partner_id")?)
        else {
            continue;
        };
        line_info.insert(
            l.id()?,
            (order.id, partner.id, l.datetime("date_planned")?.map(utc)),
        );
    }
    let products: HashMap<i64, &Product> = products.iter().map(|p| (p.id, p)).collect();
    let mut out = Vec::with_capacity(moves.len());
    for m in moves {
        let (Some(line), Some(product), Some(done)) = (
            m.many2one("purchase_line_id")?,
            m.many2one("product_id")?,
            m.datetime("date")?,
        ) else {
            continue;
        };
        let Some(&(order, partner, promised)) = line_info.get(&line.id) else {
            continue;
        };
        let Some(&ordered) = ordered_on.get(&order) else {
            continue;
        };
        let vendor_delay = products.get(&product.id).and_then(|p| {
            p.suppliers
                .iter()
                .filter(|s| s.partner_id == partner)
                .min_by_key(|s| (s.sequence, s.id))
                .map(|s| s.delay_days)
        });
        out.push(ReceiptRecord {
            partner_id: partner,
            product_id: product.id,
            ordered_on: ordered,
            received_on: utc(done),
            promised_on: promised,
            vendor_delay_days: vendor_delay,
        });
    }
    out.sort_by_key(|r| (r.partner_id, r.received_on));
    Ok(out)
}

async fn read_chunked(
    client: &OdooClient,
    model: &str,
    ids: &[i64],
    fields: &[&str],
) -> Result<Vec<Record>, OdooError> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(PAGE as usize) {
        out.extend(client.read(model, chunk, fields).await?);
    }
    Ok(out)
}

/// Confirmed sales lines not fully delivered, with their orders' promised dates.
async fn fetch_sale_lines(
    client: &OdooClient,
    product_ids: &[i64],
    warehouses: &[Warehouse],
) -> Result<Vec<SaleLine>, ScanError> {
    if product_ids.is_empty() || warehouses.is_empty() {
        return Ok(Vec::new());
    }
    let what = || ScanError::odoo("open sales lines");
    let rows = client
        .search_read_all(
            "sale.order.line",
            &json!([
                ["state", "in", confirmed_sale_states(client)],
                ["product_id", "in", product_ids]
            ]),
            &[
                "id",
                "order_id",
                "product_id",
                "product_uom_qty",
                "qty_delivered",
                "price_unit",
                sale_line_unit_field(client),
            ],
            &page_options(),
        )
        .await
        .map_err(what())?;
    let mut order_ids: Vec<i64> = Vec::new();
    for r in &rows {
        if let Some(o) = r.many2one("order_id").map_err(what())? {
            order_ids.push(o.id);
        }
    }
    order_ids.sort_unstable();
    order_ids.dedup();
    let orders = read_chunked(
        client,
        "sale.order",
        &order_ids,
        &[
            "id",
            "name",
            "partner_id",
            "commitment_date",
            "expected_date",
            "date_order",
            "warehouse_id",
        ],
    )
    .await
    .map_err(what())?;
    let mut lines = sale_lines_from(&rows, &orders, warehouses).map_err(what())?;
    in_product_units(client, &rows, &mut lines)
        .await
        .map_err(what())?;
    Ok(lines)
}

/// States of a confirmed sales order. 16 marks a locked order `done` (it
/// still has goods to ship); from 17 a locked order stays `sale` with its
/// `locked` flag set, and `done` is no state at all.
fn confirmed_sale_states(client: &OdooClient) -> &'static [&'static str] {
    if client.info().version.major >= 17 {
        &["sale"]
    } else {
        &["sale", "done"]
    }
}

/// The field holding a sales line's unit (19 renamed it).
fn sale_line_unit_field(client: &OdooClient) -> &'static str {
    if client.info().version.major >= 19 {
        "product_uom_id"
    } else {
        "product_uom"
    }
}

/// Restates open sales lines in their product's unit. A line counts ordered
/// and delivered quantities, and prices, in its own unit (a dozen); stock
/// figures count in the product's: one read of the products' units, and one of the units'
/// factors only when some line counts in another unit than its product.
async fn in_product_units(
    client: &OdooClient,
    rows: &[Record],
    lines: &mut [SaleLine],
) -> Result<(), OdooError> {
    if lines.is_empty() {
        return Ok(());
    }
    let field = sale_line_unit_field(client);
    let mut line_unit: HashMap<i64, i64> = HashMap::new();
    for row in rows {
        if let Some(unit) = row.many2one(field)? {
            line_unit.insert(row.id()?, unit.id);
        }
    }
    let mut products: Vec<i64> = lines.iter().map(|l| l.product_id).collect();
    products.sort_unstable();
    products.dedup();
    let mut product_unit: HashMap<i64, i64> = HashMap::new();
    for row in read_chunked(client, "product.product", &products, &["id", "uom_id"]).await? {
        if let Some(unit) = row.many2one("uom_id")? {
            product_unit.insert(row.id()?, unit.id);
        }
    }
    let conversions: Vec<(usize, i64, i64)> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, line)| {
            let from = *line_unit.get(&line.id)?;
            let to = *product_unit.get(&line.product_id)?;
            (from != to).then_some((i, from, to))
        })
        .collect();
    if conversions.is_empty() {
        return Ok(());
    }
    let mut units: Vec<i64> = conversions
        .iter()
        .flat_map(|&(_, from, to)| [from, to])
        .collect();
    units.sort_unstable();
    units.dedup();
    let v19 = client.info().version.major >= 19;
    let mut size: HashMap<i64, (f64, f64)> = HashMap::new();
    for row in read_chunked(client, "uom.uom", &units, &["id", "factor", "rounding"]).await? {
        let factor = row.number("factor")?;
        if factor > 0.0 {
            size.insert(row.id()?, (unit_size(factor, v19), row.number("rounding")?));
        }
    }
    for (i, from, to) in conversions {
        if let (Some(&(from, _)), Some(&(to, rounding))) = (size.get(&from), size.get(&to)) {
            let line = &mut lines[i];
            // Rounded to the product unit's precision, as Odoo converts.
            line.qty_ordered = round_half_up(line.qty_ordered * from / to, rounding);
            line.qty_delivered = round_half_up(line.qty_delivered * from / to, rounding);
            // The price is per line unit: per product unit, the value of a
            // shortfall stays what the order says.
            line.price_unit = line.price_unit * to / from;
        }
    }
    Ok(())
}

/// `value` to the nearest multiple of `step`, halves away from zero; as is
/// without a step.
fn round_half_up(value: f64, step: f64) -> f64 {
    if step <= 0.0 {
        return value;
    }
    // The epsilon keeps a half that binary floats put a hair below it.
    let steps = (value.abs() / step + 0.5 + 1e-9).floor();
    (steps * step).copysign(value)
}

/// How many reference units one unit holds, from its `factor`: up to 18 the
/// number of this unit in one reference unit (a dozen: 1/12), from 19 its size
/// in the reference unit (a dozen: 12).
fn unit_size(factor: f64, v19: bool) -> f64 {
    if v19 { factor } else { 1.0 / factor }
}

/// Open sales lines shipping from a warehouse in scope (orders without a warehouse
/// ship from the first one), promised on `commitment_date`, else the expected date,
/// else the order date.
pub fn sale_lines_from(
    rows: &[Record],
    orders: &[Record],
    warehouses: &[Warehouse],
) -> Result<Vec<SaleLine>, OdooError> {
    let in_scope: HashSet<i64> = warehouses.iter().map(|w| w.id).collect();
    let default_warehouse = warehouses.first().map(|w| w.id);
    let mut by_order: BTreeMap<i64, (String, String, Option<Date>, Option<i64>)> = BTreeMap::new();
    for o in orders {
        let promised = [
            o.datetime("commitment_date")?,
            o.datetime("expected_date")?,
            o.datetime("date_order")?,
        ]
        .into_iter()
        .flatten()
        .next()
        .map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).date());
        by_order.insert(
            o.id()?,
            (
                o.str_field("name")?.unwrap_or_default().to_string(),
                o.many2one("partner_id")?
                    .map(|p| p.name)
                    .unwrap_or_default(),
                promised,
                o.many2one("warehouse_id")?
                    .map(|w| w.id)
                    .or(default_warehouse),
            ),
        );
    }
    let mut out = Vec::new();
    for r in rows {
        let qty_ordered = r.number("product_uom_qty")?;
        let qty_delivered = r.number("qty_delivered")?;
        if qty_delivered >= qty_ordered {
            continue;
        }
        let (Some(order), Some(product)) = (r.many2one("order_id")?, r.many2one("product_id")?)
        else {
            continue;
        };
        let Some((name, partner, Some(promised), Some(warehouse))) = by_order.get(&order.id) else {
            continue;
        };
        if !in_scope.contains(warehouse) {
            continue;
        }
        out.push(SaleLine {
            id: r.id()?,
            order_name: name.clone(),
            partner_name: partner.clone(),
            product_id: product.id,
            warehouse_id: *warehouse,
            commitment_date: *promised,
            qty_ordered,
            qty_delivered,
            price_unit: r.number("price_unit")?,
        });
    }
    Ok(out)
}

async fn fetch_records(
    client: &OdooClient,
    params: &FieldThresholdParams,
    domain: &Value,
) -> Result<Vec<GenericRecord>, ScanError> {
    let mut fields = vec!["id", params.field.as_str(), params.subject_field()];
    fields.dedup();
    let rows = client
        .search_read_all(&params.model, domain, &fields, &page_options())
        .await
        .map_err(ScanError::odoo("field-threshold records"))?;
    rows.into_iter()
        .map(|row| {
            let id = row
                .id()
                .map_err(ScanError::odoo("field-threshold records"))?;
            Ok(GenericRecord {
                id,
                fields: row.into_iter().collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn rec(v: Value) -> Record {
        v.as_object().cloned().unwrap()
    }

    fn group(product: i64, location: i64, day: &str, qty: f64) -> Group {
        use odoo_client::GroupKey;
        Group {
            keys: vec![
                GroupKey {
                    groupby: "product_id".into(),
                    value: json!(product),
                    label: None,
                },
                GroupKey {
                    groupby: "location_id".into(),
                    value: json!(location),
                    label: None,
                },
                GroupKey {
                    groupby: "date:day".into(),
                    value: json!(day),
                    label: None,
                },
            ],
            count: 1,
            aggregates: [("product_qty:sum".to_string(), json!(qty))]
                .into_iter()
                .collect(),
            domain: json!([]),
        }
    }

    #[test]
    fn history_is_dense_per_product_and_warehouse() {
        // Locations 10 and 11 both belong to warehouse 1; 20 to warehouse 2.
        let locations: HashMap<i64, i64> = [(10, 1), (11, 1), (20, 2)].into_iter().collect();
        let groups = vec![
            group(7, 10, "2025-02-28", 3.0),
            group(7, 11, "2025-02-28", 2.0),
            group(7, 20, "2025-02-27", 4.0),
            group(7, 10, "2025-01-01", 99.0), // before the window
            group(7, 99, "2025-02-28", 50.0), // not a scope location
        ];
        let h = demand_history(&groups, &locations, date(2025, 3, 1), 10);
        let wh1 = &h[&(7, 1)];
        assert_eq!(wh1.end, Some(date(2025, 2, 28)));
        assert_eq!(wh1.daily.len(), 10);
        assert_eq!(wh1.daily[9], 5.0);
        assert_eq!(wh1.daily.iter().sum::<f32>(), 5.0);
        assert_eq!(h[&(7, 2)].daily[8], 4.0);
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn moves_become_receipts_and_deliveries_per_warehouse() {
        let locations: HashMap<i64, i64> = [(10, 1), (20, 2)].into_iter().collect();
        let mut items = vec![
            StockItem {
                product_id: 7,
                warehouse_id: 1,
                ..Default::default()
            },
            StockItem {
                product_id: 7,
                warehouse_id: 2,
                ..Default::default()
            },
        ];
        let rows = [
            // Vendor (5) → WH1: receipt of WH1.
            rec(
                json!({"id": 1, "product_id": [7, "P"], "product_qty": 10.0, "date": "2025-03-05 10:00:00", "location_id": [5, "Vendors"], "location_dest_id": [10, "WH1/Stock"]}),
            ),
            // WH1 → customer (9): delivery of WH1.
            rec(
                json!({"id": 2, "product_id": [7, "P"], "product_qty": 4.0, "date": "2025-03-03 10:00:00", "location_id": [10, "WH1/Stock"], "location_dest_id": [9, "Customers"]}),
            ),
            // WH1 → WH2 transfer: both.
            rec(
                json!({"id": 3, "product_id": [7, "P"], "product_qty": 2.0, "date": "2025-03-02 10:00:00", "location_id": [10, "WH1/Stock"], "location_dest_id": [20, "WH2/Stock"]}),
            ),
        ];
        let moves: Vec<OpenMove> = rows
            .iter()
            .filter_map(|row| open_move_from(row, &locations).unwrap())
            .collect();
        attach_moves(&mut items, &moves);
        assert_eq!(
            items[0].receipts,
            vec![DatedQty {
                date: date(2025, 3, 5),
                qty: 10.0
            }]
        );
        assert_eq!(items[0].deliveries.len(), 2);
        assert_eq!(items[0].deliveries[0].date, date(2025, 3, 2));
        assert_eq!(items[1].receipts[0].qty, 2.0);
        assert!(items[1].deliveries.is_empty());
    }

    #[test]
    fn purchase_lines_skip_fully_received_and_carry_memory() {
        let rows = vec![
            rec(
                json!({"id": 1, "order_id": [3, "P00003"], "partner_id": [8, "Acme"], "product_id": [7, "P"], "product_qty": 10.0, "qty_received": 4.0, "price_unit": 2.5, "date_planned": "2025-02-20 08:00:00"}),
            ),
            rec(
                json!({"id": 2, "order_id": [3, "P00003"], "partner_id": [8, "Acme"], "product_id": [7, "P"], "product_qty": 10.0, "qty_received": 10.0, "price_unit": 2.5, "date_planned": "2025-02-20 08:00:00"}),
            ),
        ];
        let mut memory = ScanMemory::default();
        memory.purchase_dates.insert(1, date(2025, 2, 10));
        let lines = purchase_lines_from(&rows, &memory).unwrap();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].order_name, "P00003");
        assert_eq!(lines[0].date_planned, date(2025, 2, 20));
        assert_eq!(lines[0].previous_date_planned, Some(date(2025, 2, 10)));
    }

    #[test]
    fn sale_lines_take_commitment_then_expected_date() {
        let warehouses = vec![Warehouse {
            id: 1,
            code: "WH".into(),
        }];
        let orders = vec![
            rec(
                json!({"id": 5, "name": "S00005", "partner_id": [3, "Cust"], "commitment_date": "2025-03-04 09:00:00", "expected_date": "2025-03-09 09:00:00", "date_order": "2025-02-01 09:00:00", "warehouse_id": [1, "WH"]}),
            ),
            rec(
                json!({"id": 6, "name": "S00006", "partner_id": [3, "Cust"], "commitment_date": false, "expected_date": "2025-03-09 09:00:00", "date_order": "2025-02-01 09:00:00", "warehouse_id": false}),
            ),
            rec(
                json!({"id": 7, "name": "S00007", "partner_id": [3, "Cust"], "commitment_date": false, "expected_date": false, "date_order": "2025-02-01 09:00:00", "warehouse_id": [2, "OTHER"]}),
            ),
        ];
        let rows = vec![
            rec(
                json!({"id": 50, "order_id": [5, "S00005"], "product_id": [7, "P"], "product_uom_qty": 5.0, "qty_delivered": 1.0, "price_unit": 10.0}),
            ),
            rec(
                json!({"id": 60, "order_id": [6, "S00006"], "product_id": [7, "P"], "product_uom_qty": 5.0, "qty_delivered": 0.0, "price_unit": 10.0}),
            ),
            rec(
                json!({"id": 61, "order_id": [6, "S00006"], "product_id": [7, "P"], "product_uom_qty": 5.0, "qty_delivered": 5.0, "price_unit": 10.0}),
            ),
            rec(
                json!({"id": 70, "order_id": [7, "S00007"], "product_id": [7, "P"], "product_uom_qty": 5.0, "qty_delivered": 0.0, "price_unit": 10.0}),
            ),
        ];
        let lines = sale_lines_from(&rows, &orders, &warehouses).unwrap();
        let got: Vec<(i64, Date, i64)> = lines
            .iter()
            .map(|l| (l.id, l.commitment_date, l.warehouse_id))
            .collect();
        assert_eq!(
            got,
            vec![(50, date(2025, 3, 4), 1), (60, date(2025, 3, 9), 1)]
        );
    }

    #[test]
    fn domains_join_with_explicit_and() {
        let scope = json!([["categ_id.name", "=", "Seasonal"], ["active", "=", true]]);
        let storable = json!([["type", "=", "product"]]);
        let joined = and_domains(&scope, &storable).unwrap();
        assert_eq!(
            joined,
            json!([
                "&",
                "&",
                ["categ_id.name", "=", "Seasonal"],
                ["active", "=", true],
                ["type", "=", "product"]
            ])
        );
        assert_eq!(and_domains(&json!([]), &storable).unwrap(), storable);
        let or = json!(["|", ["a", "=", 1], ["b", "=", 2]]);
        assert_eq!(
            and_domains(&or, &storable).unwrap(),
            json!([
                "&",
                "|",
                ["a", "=", 1],
                ["b", "=", 2],
                ["type", "=", "product"]
            ])
        );
        // Parsed back by the domain type, so Odoo reads it the same way.
        assert!(Domain::from_json_value(&joined).is_ok());
    }
}
