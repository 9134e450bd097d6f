//! The simulator's demo data set: a distributor with steady, seasonal and
//! intermittent products in several warehouses, suppliers of varying
//! reliability, a history of done deliveries and receipts, on-hand quants,
//! reordering rules, open sale and purchase orders, and a few planted planning
//! exceptions so a demo run has something to find.
//!
//! Stock is simulated day by day per product × warehouse with a periodic-review
//! (s, S) policy, so quants are exactly the sum of the done moves and never go
//! negative, and receipts and open purchase orders fall out of the same policy.
//!
//! Rows go straight into the store (`insert_raw`) instead of through `create`:
//! the 100k-product shape has millions of moves and the JSON path of `create`
//! would dominate. One seeded RNG stream for the set-up plus one per product
//! makes the same seed produce the same rows.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::civil::{Date, DateTime, Weekday};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::model::{DefaultValue, FieldType, ModelDef};
use super::store::Store;
use super::value::Val;
use super::{ADMIN_UID, Database, OdooVersion, SimConfig};

/// The generator needs a model or field the simulator registry lacks.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("the simulator registry has no model {0}")]
    MissingModel(String),
    #[error("the simulator registry has no stored field {field} on {model}")]
    MissingField { model: String, field: String },
}

/// How a product's demand behaves over the year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemandPattern {
    Steady,
    Seasonal,
    Intermittent,
}

impl DemandPattern {
    /// Also the product category name, so rule domains such as
    /// `[('categ_id.name', '=', 'Seasonal')]` select a pattern.
    pub fn category_name(self) -> &'static str {
        match self {
            DemandPattern::Steady => "Steady",
            DemandPattern::Seasonal => "Seasonal",
            DemandPattern::Intermittent => "Intermittent",
        }
    }
}

/// The exceptions planted on purpose, by record id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlantedExceptions {
    /// `product.product` ids whose stock runs out within two weeks (open
    /// demand above on hand, no receipt due before).
    pub stockout_products: Vec<i64>,
    /// `product.product` ids with about four times their usual demand over the
    /// last 14 days.
    pub spike_products: Vec<i64>,
    /// `res.partner` id of the supplier whose recent receipts came much later
    /// than its `product.supplierinfo.delay`.
    pub late_supplier: Option<i64>,
    /// `sale.order` id promised within days that cannot be served from stock.
    pub at_risk_sale_order: Option<i64>,
}

/// What `generate` produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatasetSummary {
    pub products: usize,
    pub warehouses: usize,
    pub suppliers: usize,
    pub customers: usize,
    pub done_deliveries: usize,
    pub done_receipts: usize,
    pub pending_receipts: usize,
    pub pending_deliveries: usize,
    pub quants: usize,
    pub orderpoints: usize,
    pub open_sale_orders: usize,
    pub open_purchase_orders: usize,
    /// Open purchase orders with a line whose `date_planned` is before today.
    pub late_purchase_orders: usize,
    pub done_purchase_orders: usize,
    pub exceptions: PlantedExceptions,
}

/// Record counts of a database, for the CLI banner and the bench.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DatasetShape {
    pub products: usize,
    pub warehouses: usize,
    pub partners: usize,
    pub supplierinfos: usize,
    pub stock_moves: usize,
    pub quants: usize,
    pub orderpoints: usize,
    pub sale_orders: usize,
    pub purchase_orders: usize,
    pub purchase_order_lines: usize,
}

impl std::fmt::Display for DatasetShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} products, {} warehouses, {} partners, {} supplier prices, {} stock moves, {} quants, {} reordering rules, {} sale orders, {} purchase orders ({} lines)",
            self.products,
            self.warehouses,
            self.partners,
            self.supplierinfos,
            self.stock_moves,
            self.quants,
            self.orderpoints,
            self.sale_orders,
            self.purchase_orders,
            self.purchase_order_lines
        )
    }
}

impl Database {
    /// How many records of the data-set models the database holds.
    pub fn dataset_shape(&self) -> DatasetShape {
        let Ok(inner) = self.inner.read() else {
            return DatasetShape::default();
        };
        let count = |model: &str| inner.store.table(model).map(|t| t.len()).unwrap_or(0);
        DatasetShape {
            products: count("product.product"),
            warehouses: count("stock.warehouse"),
            partners: count("res.partner"),
            supplierinfos: count("product.supplierinfo"),
            stock_moves: count("stock.move"),
            quants: count("stock.quant"),
            orderpoints: count("stock.warehouse.orderpoint"),
            sale_orders: count("sale.order"),
            purchase_orders: count("purchase.order"),
            purchase_order_lines: count("purchase.order.line"),
        }
    }
}

/// Builds the data set into a freshly seeded store, logging instead of failing:
/// `Database::new` has no error path and a registry gap is a programming error
/// the tests catch.
pub(super) fn seed_dataset(store: &mut Store, cfg: &SimConfig) {
    match generate(store, cfg) {
        Ok(summary) => tracing::debug!(?summary, "simulator data set generated"),
        Err(error) => tracing::error!(%error, "generating the simulator data set failed"),
    }
}

/// Generates the data set described by `cfg.dataset`, dated relative to `cfg.today`.
pub fn generate(store: &mut Store, cfg: &SimConfig) -> Result<DatasetSummary, DatasetError> {
    let result = Generator::new(store, cfg).and_then(Generator::run);
    store.frozen_now = None;
    result
}

/// `at` plus `n` seconds.
fn after_seconds(at: DateTime, n: usize) -> DateTime {
    at.checked_add(jiff::Span::new().seconds(n as i64))
        .unwrap_or(at)
}

/// Share of products per pattern: a long tail of slow movers, as at most distributors.
const STEADY_SHARE: f64 = 0.30;
const SEASONAL_SHARE: f64 = 0.20;
/// Days of the recent window in which spike products sell about four times as much.
const SPIKE_DAYS: i32 = 14;
const SPIKE_FACTOR: f64 = 4.0;
/// Days before today from which the deteriorating supplier delivers late.
const DETERIORATION_DAYS: i32 = 120;
/// Days of demand an order brings on top of the reorder point.
const ORDER_COVER_DAYS: f64 = 56.0;

/// A model's insert slot template with its defaults applied.
struct Maker {
    mi: usize,
    def: Arc<ModelDef>,
    template: Vec<Val>,
}

impl Maker {
    fn new(store: &Store, model: &str) -> Result<Maker, DatasetError> {
        let mi = store
            .model_index(model)
            .map_err(|_| DatasetError::MissingModel(model.to_string()))?;
        let def = store.tables[mi].def.clone();
        let empty: Arc<[i64]> = Arc::from(Vec::new());
        let mut template = vec![Val::False; def.slots];
        for field in &def.fields {
            let Some(slot) = field.slot() else { continue };
            template[slot] = match &field.default {
                Some(DefaultValue::Const(value)) => value.clone(),
                Some(DefaultValue::Company | DefaultValue::Currency) => Val::Id(1),
                Some(DefaultValue::Uid) => Val::Id(ADMIN_UID),
                Some(DefaultValue::Today) => Val::Date(store.today),
                // Timestamps and sequence names are always set explicitly here.
                Some(DefaultValue::Now | DefaultValue::Sequence(..)) | None => match field.ftype {
                    FieldType::Many2many => Val::Ids(empty.clone()),
                    _ => Val::False,
                },
            };
        }
        Ok(Maker { mi, def, template })
    }

    fn slot(&self, field: &str) -> Result<usize, DatasetError> {
        self.def
            .slot_of(field)
            .ok_or_else(|| DatasetError::MissingField {
                model: self.def.name.clone(),
                field: field.to_string(),
            })
    }

    fn opt(&self, field: &str) -> Option<usize> {
        self.def.slot_of(field)
    }

    /// Inserts a row stamped `at`; `values` are (slot, value) pairs.
    fn insert(
        &self,
        store: &mut Store,
        at: DateTime,
        values: impl IntoIterator<Item = (usize, Val)>,
    ) -> i64 {
        let mut vals = self.template.clone();
        for (slot, value) in values {
            vals[slot] = value;
        }
        // Stamped no later than the simulator's clock starts, so that, as in a
        // real database, nothing was written "in the future": an order placed
        // this afternoon in the data set still reads as written before now.
        store.frozen_now = Some(at.min(store.clock_origin));
        store.insert_raw(self.mi, vals, ADMIN_UID)
    }

    /// Inserts a row from (field name, value) pairs; for the low-volume models.
    fn insert_named(
        &self,
        store: &mut Store,
        at: DateTime,
        values: Vec<(&str, Val)>,
    ) -> Result<i64, DatasetError> {
        let mut slotted = Vec::with_capacity(values.len());
        for (name, value) in values {
            slotted.push((self.slot(name)?, value));
        }
        Ok(self.insert(store, at, slotted))
    }

    fn set(&self, store: &mut Store, id: i64, field: &str, value: Val) -> Result<(), DatasetError> {
        let slot = self.slot(field)?;
        store.set_slot(self.mi, id, slot, value);
        Ok(())
    }
}

/// Slots of `stock.move`, resolved once: millions of moves are inserted.
struct MoveSlots {
    maker: Maker,
    name: usize,
    reference: usize,
    product_id: usize,
    product_uom_qty: usize,
    /// `quantity` (17+) or `quantity_done` (16).
    quantity: usize,
    state: usize,
    date: usize,
    date_deadline: usize,
    location_id: usize,
    location_dest_id: usize,
    picking_id: usize,
    picking_type_id: usize,
    warehouse_id: usize,
    origin: usize,
    purchase_line_id: usize,
    sale_line_id: usize,
    partner_id: usize,
}

impl MoveSlots {
    fn new(store: &Store) -> Result<MoveSlots, DatasetError> {
        let mut maker = Maker::new(store, "stock.move")?;
        // Every generated product counts in the first unit, and so do its moves.
        if let Some(slot) = maker.opt("product_uom") {
            maker.template[slot] = Val::Id(1);
        }
        let quantity = match maker.opt("quantity") {
            Some(slot) => slot,
            None => maker.slot("quantity_done")?,
        };
        Ok(MoveSlots {
            name: maker.slot("name")?,
            reference: maker.slot("reference")?,
            product_id: maker.slot("product_id")?,
            product_uom_qty: maker.slot("product_uom_qty")?,
            quantity,
            state: maker.slot("state")?,
            date: maker.slot("date")?,
            date_deadline: maker.slot("date_deadline")?,
            location_id: maker.slot("location_id")?,
            location_dest_id: maker.slot("location_dest_id")?,
            picking_id: maker.slot("picking_id")?,
            picking_type_id: maker.slot("picking_type_id")?,
            warehouse_id: maker.slot("warehouse_id")?,
            origin: maker.slot("origin")?,
            purchase_line_id: maker.slot("purchase_line_id")?,
            sale_line_id: maker.slot("sale_line_id")?,
            partner_id: maker.slot("partner_id")?,
            maker,
        })
    }
}

/// One stock move to insert.
struct MoveRow {
    name: Val,
    reference: Val,
    product: i64,
    demand: f64,
    /// Done or reserved quantity.
    quantity: f64,
    state: &'static str,
    date: DateTime,
    deadline: Option<DateTime>,
    from: i64,
    to: i64,
    picking: Option<i64>,
    /// None for inventory adjustments, which Odoo books without an operation type.
    picking_type: Option<i64>,
    warehouse: i64,
    origin: Val,
    purchase_line: Option<i64>,
    sale_line: Option<i64>,
    partner: Option<i64>,
}

impl MoveSlots {
    fn insert(&self, store: &mut Store, states: &States, row: MoveRow) -> i64 {
        let id_or_false = |id: Option<i64>| id.map(Val::Id).unwrap_or(Val::False);
        let state = states.get(row.state);
        self.maker.insert(
            store,
            row.date,
            [
                (self.name, row.name),
                (self.reference, row.reference),
                (self.product_id, Val::Id(row.product)),
                (self.product_uom_qty, Val::Float(row.demand)),
                (self.quantity, Val::Float(row.quantity)),
                (self.state, state),
                (self.date, Val::Datetime(row.date)),
                (
                    self.date_deadline,
                    row.deadline.map(Val::Datetime).unwrap_or(Val::False),
                ),
                (self.location_id, Val::Id(row.from)),
                (self.location_dest_id, Val::Id(row.to)),
                (self.picking_id, id_or_false(row.picking)),
                (self.picking_type_id, id_or_false(row.picking_type)),
                (self.warehouse_id, Val::Id(row.warehouse)),
                (self.origin, row.origin),
                (self.purchase_line_id, id_or_false(row.purchase_line)),
                (self.sale_line_id, id_or_false(row.sale_line)),
                (self.partner_id, id_or_false(row.partner)),
            ],
        )
    }
}

/// Shared selection strings, so millions of rows do not each allocate "done".
struct States(HashMap<&'static str, Val>);

impl States {
    fn new() -> States {
        let names = [
            "draft",
            "confirmed",
            "partially_available",
            "assigned",
            "done",
            "purchase",
            "sale",
            "auto",
            "manual",
            "0",
            "product",
            "consu",
        ];
        States(names.iter().map(|n| (*n, Val::str(n))).collect())
    }

    fn get(&self, name: &'static str) -> Val {
        self.0.get(name).cloned().unwrap_or_else(|| Val::str(name))
    }
}

/// Day numbers relative to the start of the history: day `horizon` is today.
struct Calendar {
    start: Date,
    horizon: i32,
    /// Dates from `start - PAD` to `start + horizon + PAD`.
    dates: Vec<Date>,
}

const CALENDAR_PAD: i32 = 400;

impl Calendar {
    fn new(today: Date, history_days: u32) -> Calendar {
        let horizon = i32::try_from(history_days)
            .unwrap_or(i32::MAX / 4)
            .min(20_000);
        let start = shift(today, -i64::from(horizon));
        let first = shift(start, -i64::from(CALENDAR_PAD));
        let mut dates = Vec::with_capacity((horizon + 2 * CALENDAR_PAD + 1) as usize);
        let mut current = first;
        for _ in 0..=(horizon + 2 * CALENDAR_PAD) {
            dates.push(current);
            current = current.tomorrow().unwrap_or(current);
        }
        Calendar {
            start,
            horizon,
            dates,
        }
    }

    fn date(&self, day: i32) -> Date {
        usize::try_from(day + CALENDAR_PAD)
            .ok()
            .and_then(|i| self.dates.get(i).copied())
            .unwrap_or_else(|| shift(self.start, i64::from(day)))
    }

    fn at(&self, day: i32, hour: i8, minute: i8) -> DateTime {
        self.date(day).to_datetime(jiff::civil::time(
            hour.clamp(0, 23),
            minute.clamp(0, 59),
            0,
            0,
        ))
    }

    fn is_workday(&self, day: i32) -> bool {
        !matches!(
            self.date(day).weekday(),
            Weekday::Saturday | Weekday::Sunday
        )
    }
}

fn shift(date: Date, days: i64) -> Date {
    date.checked_add(jiff::Span::new().days(days))
        .unwrap_or(date)
}

/// Draws from Poisson(lambda); inversion for the small rates used here.
fn poisson(rng: &mut StdRng, lambda: f64) -> u32 {
    if lambda <= 0.0 {
        return 0;
    }
    if lambda > 30.0 {
        return (lambda + lambda.sqrt() * normal(rng)).round().max(0.0) as u32;
    }
    let limit = (-lambda).exp();
    let mut count = 0;
    let mut product: f64 = rng.random();
    while product > limit {
        count += 1;
        product *= rng.random::<f64>();
    }
    count
}

fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// Independent, reproducible stream per product and purpose.
fn stream(seed: u64, purpose: u64, index: u64) -> StdRng {
    let mut x = seed
        ^ purpose.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03);
    // splitmix64 finaliser so neighbouring indexes give unrelated seeds.
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    StdRng::seed_from_u64(x ^ (x >> 31))
}

/// One done delivery picking per warehouse and day, created on first use.
struct DeliveryPickings {
    maker: Maker,
    by_day: HashMap<(usize, i32), (i64, Val)>,
}

impl DeliveryPickings {
    fn new(store: &Store) -> Result<DeliveryPickings, DatasetError> {
        Ok(DeliveryPickings {
            maker: Maker::new(store, "stock.picking")?,
            by_day: HashMap::new(),
        })
    }

    fn get(
        &mut self,
        store: &mut Store,
        calendar: &Calendar,
        states: &States,
        warehouse: &Warehouse,
        (w, day, customers): (usize, i32, i64),
    ) -> Result<(i64, Val), DatasetError> {
        if let Some((id, name)) = self.by_day.get(&(w, day)) {
            return Ok((*id, name.clone()));
        }
        let name = Val::str(&store.next_sequence(&format!("{}/OUT/", warehouse.code), 5));
        let id = self.maker.insert_named(
            store,
            calendar.at(day, 7, 0),
            vec![
                ("name", name.clone()),
                ("state", states.get("done")),
                ("scheduled_date", Val::Datetime(calendar.at(day, 8, 0))),
                ("date_done", Val::Datetime(calendar.at(day, 17, 30))),
                ("picking_type_id", Val::Id(warehouse.out_type)),
                ("location_id", Val::Id(warehouse.stock)),
                ("location_dest_id", Val::Id(customers)),
            ],
        )?;
        self.by_day.insert((w, day), (id, name.clone()));
        Ok((id, name))
    }
}

struct Warehouse {
    id: i64,
    code: String,
    stock: i64,
    in_type: i64,
    out_type: i64,
}

struct Supplier {
    partner: i64,
    delay: i32,
    reliability: f64,
    review_days: i32,
    deteriorates: bool,
    /// Upper bound of how late a receipt can come, in days.
    worst_lateness: i32,
}

/// A purchase order slot: one order per supplier × warehouse per review day.
struct Slot {
    supplier: usize,
    warehouse: usize,
    order_day: i32,
    planned_day: i32,
    arrival_day: i32,
    arrival_minute: i8,
    /// Added to reach the requested number of open orders; only top-up lines.
    extra: bool,
    po: i64,
    picking: i64,
    name: Val,
    picking_name: Val,
    lines: usize,
}

impl Slot {
    fn open(&self, horizon: i32) -> bool {
        self.arrival_day >= horizon
    }
}

struct ProductPlan {
    pattern: DemandPattern,
    /// Order lines per calendar day over all warehouses.
    rate: f64,
    size_mean: f64,
    season_amplitude: f64,
    season_peak: f64,
    shares: Vec<f64>,
    home: usize,
    supplier: usize,
    min_qty: f64,
    cost: f64,
    price: f64,
    spike: bool,
    stockout: bool,
    product: i64,
    supplierinfo: i64,
    display: Val,
}

impl ProductPlan {
    fn season(&self, calendar: &Calendar, day: i32) -> f64 {
        if self.pattern != DemandPattern::Seasonal {
            return 1.0;
        }
        let doy = f64::from(calendar.date(day).day_of_year());
        let phase = std::f64::consts::TAU * (doy - self.season_peak) / 365.25;
        (1.0 + self.season_amplitude * phase.cos()).max(0.0)
    }

    fn draw_size(&self, rng: &mut StdRng) -> f64 {
        match self.pattern {
            DemandPattern::Intermittent => {
                let u: f64 = rng.random();
                (self.size_mean * (0.3 + 1.7 * u * u)).round().max(1.0)
            }
            _ => f64::from(1 + poisson(rng, self.size_mean - 1.0)),
        }
    }

    /// Expected units per day in one warehouse.
    fn daily_demand(&self, calendar: &Calendar, warehouse: usize, day: i32) -> f64 {
        let average_size = match self.pattern {
            DemandPattern::Intermittent => self.size_mean * (0.3 + 1.7 / 3.0),
            _ => self.size_mean,
        };
        self.rate * self.shares[warehouse] * self.season(calendar, day) * average_size
    }
}

/// Reorder point and order-up-to level of a product in a warehouse on a day.
fn policy(
    plan: &ProductPlan,
    supplier: &Supplier,
    calendar: &Calendar,
    w: usize,
    day: i32,
) -> (f64, f64) {
    let demand = plan.daily_demand(calendar, w, day);
    let lead = f64::from(supplier.delay + supplier.review_days);
    let mut reorder = (demand * lead * 1.3 + plan.size_mean).ceil();
    let mut up_to = reorder + (demand * ORDER_COVER_DAYS).ceil() + plan.min_qty;
    if plan.spike {
        // Enough stock that the spike shows in deliveries rather than lost sales.
        reorder *= 2.0;
        up_to *= 3.0;
    }
    (reorder, up_to)
}

/// Final stock position of one product in one warehouse.
#[derive(Default, Clone)]
struct Position {
    on_hand: f64,
    last_receipt: Option<DateTime>,
    reorder: f64,
    up_to: f64,
}

const CITY_NAMES: &[&str] = &[
    "Antwerp",
    "Lyon",
    "Rotterdam",
    "Milan",
    "Hamburg",
    "Barcelona",
    "Warsaw",
    "Porto",
    "Vienna",
    "Dublin",
];
const COMPANY_WORDS: &[&str] = &[
    "Alpine",
    "Baltic",
    "Cobalt",
    "Delta",
    "Evergreen",
    "Falcon",
    "Granite",
    "Harbor",
    "Iris",
    "Juniper",
    "Keystone",
    "Lumen",
    "Meridian",
    "Northwind",
    "Orchid",
    "Pioneer",
    "Quartz",
    "Riverside",
    "Summit",
    "Tidewater",
];
const SUPPLIER_KINDS: &[&str] = &[
    "Supply",
    "Industries",
    "Manufacturing",
    "Components",
    "Works",
];
const CUSTOMER_KINDS: &[&str] = &["Retail", "Hardware", "Stores", "Outfitters", "Trading"];
const PRODUCT_ADJECTIVES: &[&str] = &[
    "Steel",
    "Brass",
    "Compact",
    "Heavy-Duty",
    "Outdoor",
    "Classic",
    "Thermal",
    "Foldable",
    "Premium",
    "Eco",
    "Industrial",
    "Cordless",
];
const PRODUCT_ITEMS: &[&str] = &[
    "Hinge",
    "Lantern",
    "Drill",
    "Cable Reel",
    "Heater",
    "Fan",
    "Ladder",
    "Toolbox",
    "Hose",
    "Work Light",
    "Padlock",
    "Sprayer",
    "Bracket",
    "Snow Shovel",
    "Cooler",
    "Tarp",
];

fn company_name(index: usize, kinds: &[&str]) -> String {
    let word = COMPANY_WORDS[index % COMPANY_WORDS.len()];
    let kind = kinds[(index / COMPANY_WORDS.len()) % kinds.len()];
    let round = index / (COMPANY_WORDS.len() * kinds.len());
    if round == 0 {
        format!("{word} {kind}")
    } else {
        format!("{word} {kind} {}", round + 1)
    }
}

struct Generator<'a> {
    store: &'a mut Store,
    version: OdooVersion,
    params: super::DatasetParams,
    calendar: Calendar,
    rng: StdRng,
    states: States,
    moves: MoveSlots,
    supplier_location: i64,
    customer_location: i64,
    inventory_location: i64,
    buy_route: i64,
    warehouses: Vec<Warehouse>,
    suppliers: Vec<Supplier>,
    customers: Vec<i64>,
    slots: Vec<Slot>,
    /// Slot indexes per supplier × warehouse, by order day.
    slot_lists: Vec<Vec<usize>>,
    plans: Vec<ProductPlan>,
    positions: Vec<Position>,
    /// Open sale demand already reserved per product × warehouse.
    reserved: Vec<f64>,
    deliveries: DeliveryPickings,
    adjustment: Val,
    summary: DatasetSummary,
}

impl<'a> Generator<'a> {
    fn new(store: &'a mut Store, cfg: &SimConfig) -> Result<Generator<'a>, DatasetError> {
        let moves = MoveSlots::new(store)?;
        let deliveries = DeliveryPickings::new(store)?;
        Ok(Generator {
            version: cfg.version,
            params: cfg.dataset.clone(),
            calendar: Calendar::new(cfg.today, cfg.dataset.history_days),
            rng: StdRng::seed_from_u64(cfg.dataset.seed),
            states: States::new(),
            moves,
            store,
            supplier_location: 0,
            customer_location: 0,
            inventory_location: 0,
            buy_route: 0,
            warehouses: Vec::new(),
            suppliers: Vec::new(),
            customers: Vec::new(),
            slots: Vec::new(),
            slot_lists: Vec::new(),
            plans: Vec::new(),
            positions: Vec::new(),
            reserved: Vec::new(),
            deliveries,
            adjustment: Val::str("Product Quantity Updated"),
            summary: DatasetSummary::default(),
        })
    }

    fn run(mut self) -> Result<DatasetSummary, DatasetError> {
        self.locations_and_warehouses()?;
        self.partners()?;
        self.schedule_purchase_slots();
        self.plan_products();
        self.create_slot_orders()?;
        self.products()?;
        self.top_up_open_orders()?;
        self.drop_empty_slots()?;
        self.open_sale_orders()?;
        self.quants()?;
        self.orderpoints()?;
        self.summary.products = self.plans.len();
        self.summary.warehouses = self.warehouses.len();
        self.summary.suppliers = self.suppliers.len();
        self.summary.customers = self.customers.len();
        Ok(self.summary)
    }

    fn start(&self) -> DateTime {
        self.calendar.at(0, 0, 0)
    }

    fn locations_and_warehouses(&mut self) -> Result<(), DatasetError> {
        let at = self.start();
        let location = Maker::new(self.store, "stock.location")?;
        let add_location = |store: &mut Store, name: &str, usage: &str, parent: Option<i64>| {
            let mut values = vec![("name", Val::str(name)), ("usage", Val::str(usage))];
            if let Some(parent) = parent {
                values.push(("location_id", Val::Id(parent)));
            }
            location.insert_named(store, at, values)
        };
        let physical = add_location(self.store, "Physical Locations", "view", None)?;
        let partners = add_location(self.store, "Partners", "view", None)?;
        self.supplier_location = add_location(self.store, "Vendors", "supplier", Some(partners))?;
        self.customer_location = add_location(self.store, "Customers", "customer", Some(partners))?;
        let virtual_locations = add_location(self.store, "Virtual Locations", "view", None)?;
        self.inventory_location = add_location(
            self.store,
            "Inventory adjustment",
            "inventory",
            Some(virtual_locations),
        )?;

        let route = Maker::new(self.store, "stock.route")?;
        self.buy_route = route.insert_named(
            self.store,
            at,
            vec![("name", Val::str("Buy")), ("sequence", Val::Int(5))],
        )?;

        let warehouse = Maker::new(self.store, "stock.warehouse")?;
        let picking_type = Maker::new(self.store, "stock.picking.type")?;
        for index in 0..self.params.warehouses {
            let (name, code) = match CITY_NAMES.get(index) {
                Some(city) => (format!("{city} Warehouse"), city[..3].to_ascii_uppercase()),
                None => (
                    format!("Warehouse {}", index + 1),
                    format!("W{}", index + 1),
                ),
            };
            let view = add_location(self.store, &code, "view", Some(physical))?;
            let stock = add_location(self.store, "Stock", "internal", Some(view))?;
            let id = warehouse.insert_named(
                self.store,
                at,
                vec![
                    ("name", Val::str(&name)),
                    ("code", Val::str(&code)),
                    ("partner_id", Val::Id(1)),
                    ("view_location_id", Val::Id(view)),
                    ("lot_stock_id", Val::Id(stock)),
                    ("sequence", Val::Int(10 + index as i64)),
                ],
            )?;
            location.set(self.store, view, "warehouse_id", Val::Id(id))?;
            location.set(self.store, stock, "warehouse_id", Val::Id(id))?;
            let in_type = picking_type.insert_named(
                self.store,
                at,
                vec![
                    ("name", Val::str("Receipts")),
                    ("code", Val::str("incoming")),
                    ("sequence_code", Val::str("IN")),
                    ("warehouse_id", Val::Id(id)),
                    ("default_location_src_id", Val::Id(self.supplier_location)),
                    ("default_location_dest_id", Val::Id(stock)),
                    ("sequence", Val::Int(1)),
                ],
            )?;
            let out_type = picking_type.insert_named(
                self.store,
                at,
                vec![
                    ("name", Val::str("Delivery Orders")),
                    ("code", Val::str("outgoing")),
                    ("sequence_code", Val::str("OUT")),
                    ("warehouse_id", Val::Id(id)),
                    ("default_location_src_id", Val::Id(stock)),
                    ("default_location_dest_id", Val::Id(self.customer_location)),
                    ("sequence", Val::Int(2)),
                ],
            )?;
            warehouse.set(self.store, id, "in_type_id", Val::Id(in_type))?;
            warehouse.set(self.store, id, "out_type_id", Val::Id(out_type))?;
            self.warehouses.push(Warehouse {
                id,
                code,
                stock,
                in_type,
                out_type,
            });
        }
        Ok(())
    }

    fn partners(&mut self) -> Result<(), DatasetError> {
        let at = self.start();
        let partner = Maker::new(self.store, "res.partner")?;
        let deteriorating = if self.params.suppliers > 0 {
            Some(self.rng.random_range(0..self.params.suppliers))
        } else {
            None
        };
        for index in 0..self.params.suppliers {
            let name = company_name(index, SUPPLIER_KINDS);
            let city = CITY_NAMES[self.rng.random_range(0..CITY_NAMES.len())];
            let id = partner.insert_named(
                self.store,
                at,
                vec![
                    ("name", Val::str(&name)),
                    ("is_company", Val::Bool(true)),
                    ("supplier_rank", Val::Int(1)),
                    ("ref", Val::str(&format!("SUP{:04}", index + 1))),
                    (
                        "email",
                        Val::str(&format!("orders@supplier{}.example", index + 1)),
                    ),
                    ("city", Val::str(city)),
                    ("company_id", Val::Id(1)),
                ],
            )?;
            let delay = self.rng.random_range(3..=21);
            let deteriorates = deteriorating == Some(index);
            // The deteriorating supplier used to be dependable; that is the point.
            let reliability = if deteriorates {
                0.95
            } else {
                self.rng.random_range(0.6..0.98)
            };
            let normal_late = delay / 2 + 2;
            let worst_lateness = if deteriorates {
                normal_late + delay + delay / 2 + 4
            } else {
                normal_late
            };
            self.suppliers.push(Supplier {
                partner: id,
                delay,
                reliability,
                review_days: if self.rng.random_bool(0.75) { 7 } else { 14 },
                deteriorates,
                worst_lateness,
            });
            if deteriorates {
                self.summary.exceptions.late_supplier = Some(id);
            }
        }
        for index in 0..self.params.customers {
            let name = company_name(index, CUSTOMER_KINDS);
            let city = CITY_NAMES[self.rng.random_range(0..CITY_NAMES.len())];
            let id = partner.insert_named(
                self.store,
                at,
                vec![
                    ("name", Val::str(&name)),
                    ("is_company", Val::Bool(true)),
                    ("customer_rank", Val::Int(1)),
                    ("ref", Val::str(&format!("CUS{:04}", index + 1))),
                    (
                        "email",
                        Val::str(&format!("purchasing@customer{}.example", index + 1)),
                    ),
                    ("city", Val::str(city)),
                    ("company_id", Val::Id(1)),
                ],
            )?;
            self.customers.push(id);
        }
        Ok(())
    }

    /// Lays out every purchase order before any product is simulated, so the
    /// orders of one supplier × warehouse × review day share one PO and one
    /// arrival, and the number of open orders can be made exact up front.
    fn schedule_purchase_slots(&mut self) {
        let horizon = self.calendar.horizon;
        let warehouses = self.warehouses.len();
        let mut slots = Vec::new();
        for (s, supplier) in self.suppliers.iter().enumerate() {
            for w in 0..warehouses {
                let mut day = self.rng.random_range(0..supplier.review_days);
                while day < horizon {
                    // Orders go out on workdays; a weekend review slips to Monday.
                    let mut order_day = day;
                    while !self.calendar.is_workday(order_day) {
                        order_day += 1;
                    }
                    if order_day >= horizon {
                        break;
                    }
                    let planned_day = order_day + supplier.delay;
                    let mut lateness = if self.rng.random_bool(supplier.reliability) {
                        if self.rng.random_bool(0.1) { -1 } else { 0 }
                    } else {
                        self.rng.random_range(1..=supplier.delay / 2 + 2)
                    };
                    if supplier.deteriorates && order_day >= horizon - DETERIORATION_DAYS {
                        lateness += supplier.delay + supplier.delay / 2 + 4;
                    }
                    slots.push(Slot {
                        supplier: s,
                        warehouse: w,
                        order_day,
                        planned_day,
                        arrival_day: (planned_day + lateness).max(order_day + 1),
                        arrival_minute: self.rng.random_range(0..59),
                        extra: false,
                        po: 0,
                        picking: 0,
                        name: Val::False,
                        picking_name: Val::False,
                        lines: 0,
                    });
                    day += supplier.review_days;
                }
            }
        }
        self.slots = slots;
        self.fit_open_slots();
        self.slots
            .sort_by_key(|s| (s.order_day, s.supplier, s.warehouse, s.extra));
        self.slot_lists = vec![Vec::new(); self.suppliers.len() * warehouses];
        for (index, slot) in self.slots.iter().enumerate() {
            self.slot_lists[slot.supplier * warehouses + slot.warehouse].push(index);
        }
    }

    /// Makes exactly `open_purchase_orders` slots arrive after today, about a
    /// quarter of them already past their planned date (late).
    fn fit_open_slots(&mut self) {
        let horizon = self.calendar.horizon;
        let wanted = if self.warehouses.is_empty() || self.suppliers.is_empty() {
            0
        } else {
            self.params.open_purchase_orders
        };
        let mut open: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].open(horizon))
            .collect();
        open.sort_by_key(|&i| (self.slots[i].order_day, i));
        if open.len() > wanted {
            // The oldest surplus orders arrived yesterday instead.
            for &i in &open[..open.len() - wanted] {
                let slot = &mut self.slots[i];
                slot.arrival_day = (horizon - 1).max(slot.order_day);
            }
            open.drain(..open.len() - wanted);
        }
        let mut k = 0;
        while open.len() < wanted {
            let supplier = k % self.suppliers.len();
            let warehouse = (k / self.suppliers.len()) % self.warehouses.len();
            let delay = self.suppliers[supplier].delay;
            let order_day = horizon - 1 - ((k * 3) % 20) as i32;
            let planned_day = order_day + delay;
            self.slots.push(Slot {
                supplier,
                warehouse,
                order_day,
                planned_day,
                arrival_day: (planned_day + self.rng.random_range(0..4)).max(horizon),
                arrival_minute: self.rng.random_range(0..59),
                extra: true,
                po: 0,
                picking: 0,
                name: Val::False,
                picking_name: Val::False,
                lines: 0,
            });
            open.push(self.slots.len() - 1);
            k += 1;
        }
        let late_wanted = wanted.div_ceil(4);
        let mut late = open
            .iter()
            .filter(|&&i| self.slots[i].planned_day < horizon)
            .count();
        for &i in &open {
            if late >= late_wanted {
                break;
            }
            let slot = &mut self.slots[i];
            if slot.planned_day >= horizon {
                // Ordered earlier so that it is now overdue by a few days.
                let overdue = 1 + (i % 6) as i32;
                slot.planned_day = horizon - overdue;
                slot.order_day = slot.planned_day - self.suppliers[slot.supplier].delay;
                late += 1;
            }
        }
    }

    fn plan_products(&mut self) {
        let warehouses = self.warehouses.len();
        let count = self.params.products;
        for index in 0..count {
            let mut rng = stream(self.params.seed, 1, index as u64);
            let roll: f64 = rng.random();
            let pattern = if roll < STEADY_SHARE {
                DemandPattern::Steady
            } else if roll < STEADY_SHARE + SEASONAL_SHARE {
                DemandPattern::Seasonal
            } else {
                DemandPattern::Intermittent
            };
            let (rate, size_mean) = match pattern {
                DemandPattern::Steady => {
                    (rng.random_range(0.06..0.25), rng.random_range(4.0..24.0))
                }
                DemandPattern::Seasonal => {
                    (rng.random_range(0.04..0.16), rng.random_range(4.0..20.0))
                }
                DemandPattern::Intermittent => {
                    (rng.random_range(0.005..0.025), rng.random_range(5.0..60.0))
                }
            };
            let home = if warehouses > 0 {
                rng.random_range(0..warehouses)
            } else {
                0
            };
            let mut shares: Vec<f64> = (0..warehouses)
                .map(|w| {
                    if w == home {
                        1.0
                    } else {
                        rng.random_range(0.1..0.4)
                    }
                })
                .collect();
            let total: f64 = shares.iter().sum();
            if total > 0.0 {
                shares.iter_mut().for_each(|s| *s /= total);
            }
            let cost = round2((rng.random_range(0.7..6.0f64)).exp());
            let price = round2(cost * rng.random_range(1.25..1.8));
            let min_qty = *[1.0, 1.0, 5.0, 6.0, 10.0, 12.0, 24.0]
                .get(rng.random_range(0..7))
                .unwrap_or(&1.0);
            let supplier = if self.suppliers.is_empty() {
                0
            } else {
                index % self.suppliers.len()
            };
            let adjective = PRODUCT_ADJECTIVES[rng.random_range(0..PRODUCT_ADJECTIVES.len())];
            let item = PRODUCT_ITEMS[rng.random_range(0..PRODUCT_ITEMS.len())];
            let display = format!("[DP{:06}] {adjective} {item}", index + 1);
            self.plans.push(ProductPlan {
                pattern,
                rate,
                size_mean,
                season_amplitude: rng.random_range(0.6..0.9),
                season_peak: if rng.random_bool(0.5) {
                    rng.random_range(160.0..200.0)
                } else {
                    rng.random_range(330.0..370.0)
                },
                shares,
                home,
                supplier,
                min_qty,
                cost,
                price,
                spike: false,
                stockout: false,
                product: 0,
                supplierinfo: 0,
                display: Val::str(&display),
            });
        }
        if warehouses == 0 || count == 0 {
            return;
        }
        // A couple of spikes and a few stock-outs among the fast movers.
        let spikes = (2 + count / 2000).min(count);
        let stockouts = (3 + count / 1000).min(count);
        let offset = self.rng.random_range(0..count);
        let mut chosen_spikes = 0;
        let mut chosen_stockouts = 0;
        for step in 0..count {
            let i = (offset + step) % count;
            let plan = &mut self.plans[i];
            if chosen_spikes < spikes && plan.pattern == DemandPattern::Steady {
                plan.spike = true;
                chosen_spikes += 1;
            } else if chosen_stockouts < stockouts
                && plan.pattern != DemandPattern::Intermittent
                && self
                    .suppliers
                    .get(plan.supplier)
                    .is_some_and(|s| !s.deteriorates)
            {
                plan.stockout = true;
                chosen_stockouts += 1;
            }
            if chosen_spikes == spikes && chosen_stockouts == stockouts {
                break;
            }
        }
    }

    /// Creates the purchase order and receipt of every slot, in order-date
    /// order so names follow time; slots left without lines are removed later.
    fn create_slot_orders(&mut self) -> Result<(), DatasetError> {
        let horizon = self.calendar.horizon;
        let order = Maker::new(self.store, "purchase.order")?;
        let picking = Maker::new(self.store, "stock.picking")?;
        let locked = order.opt("locked");
        for index in 0..self.slots.len() {
            let slot = &self.slots[index];
            let supplier = &self.suppliers[slot.supplier];
            let warehouse = &self.warehouses[slot.warehouse];
            let ordered = self.calendar.at(slot.order_day, 9, 0);
            let planned = self.calendar.at(slot.planned_day, 10, 0);
            let arrived = self.calendar.at(slot.arrival_day, 10, slot.arrival_minute);
            let open = slot.open(horizon);
            let name = Val::str(&self.store.next_sequence("P", 5));
            let mut values = vec![
                ("name", name.clone()),
                ("partner_id", Val::Id(supplier.partner)),
                ("date_order", Val::Datetime(ordered)),
                ("date_approve", Val::Datetime(ordered)),
                ("date_planned", Val::Datetime(planned)),
                ("state", self.states.get("purchase")),
                ("picking_type_id", Val::Id(warehouse.in_type)),
            ];
            if !open {
                values.push(("effective_date", Val::Datetime(arrived)));
            }
            let po = order.insert_named(self.store, ordered, values)?;
            if let Some(slot) = locked {
                self.store.set_slot(order.mi, po, slot, Val::Bool(false));
            }
            let picking_name = Val::str(
                &self
                    .store
                    .next_sequence(&format!("{}/IN/", warehouse.code), 5),
            );
            let mut values = vec![
                ("name", picking_name.clone()),
                ("origin", name.clone()),
                (
                    "state",
                    self.states.get(if open { "assigned" } else { "done" }),
                ),
                ("scheduled_date", Val::Datetime(planned)),
                ("date_deadline", Val::Datetime(planned)),
                ("partner_id", Val::Id(supplier.partner)),
                ("picking_type_id", Val::Id(warehouse.in_type)),
                ("location_id", Val::Id(self.supplier_location)),
                ("location_dest_id", Val::Id(warehouse.stock)),
                ("purchase_id", Val::Id(po)),
            ];
            if !open {
                values.push(("date_done", Val::Datetime(arrived)));
            }
            let picking_id = picking.insert_named(self.store, ordered, values)?;
            let slot = &mut self.slots[index];
            slot.po = po;
            slot.picking = picking_id;
            slot.name = name;
            slot.picking_name = picking_name;
        }
        Ok(())
    }

    fn products(&mut self) -> Result<(), DatasetError> {
        let at = self.start();
        let category = Maker::new(self.store, "product.category")?;
        let all = self.category_all(&category, at)?;
        let mut categories = HashMap::new();
        for pattern in [
            DemandPattern::Steady,
            DemandPattern::Seasonal,
            DemandPattern::Intermittent,
        ] {
            let id = category.insert_named(
                self.store,
                at,
                vec![
                    ("name", Val::str(pattern.category_name())),
                    ("parent_id", Val::Id(all)),
                ],
            )?;
            categories.insert(pattern.category_name(), id);
        }
        let template = Maker::new(self.store, "product.template")?;
        let product = Maker::new(self.store, "product.product")?;
        let seller = Maker::new(self.store, "product.supplierinfo")?;
        let line = Maker::new(self.store, "purchase.order.line")?;
        let routes: Val = Val::Ids(Arc::from(vec![self.buy_route]));
        let uom = Val::Id(1);
        let (storable_type, detailed, is_storable) = match self.version {
            OdooVersion::V16 => ("product", false, false),
            OdooVersion::V17 => ("product", true, false),
            OdooVersion::V18 | OdooVersion::V19 => ("consu", false, true),
        };
        let line_uom = line.opt("product_uom").or(line.opt("product_uom_id"));
        let warehouses = self.warehouses.len();
        self.positions = vec![Position::default(); self.plans.len() * warehouses];
        for index in 0..self.plans.len() {
            // A catalogue is entered over time, not in one instant: one product
            // (with its template and vendor lines) a second.
            let at = after_seconds(at, index);
            let plan = &self.plans[index];
            let code = format!("DP{:06}", index + 1);
            let name = plan
                .display
                .as_str()
                .and_then(|d| d.split_once("] "))
                .map(|(_, n)| n.to_string())
                .unwrap_or_else(|| code.clone());
            let mut values = vec![
                ("name", Val::str(&name)),
                ("default_code", Val::str(&code)),
                ("list_price", Val::Float(plan.price)),
                ("standard_price", Val::Float(plan.cost)),
                ("type", self.states.get(storable_type)),
                (
                    "categ_id",
                    Val::Id(categories[plan.pattern.category_name()]),
                ),
                ("uom_id", uom.clone()),
                ("route_ids", routes.clone()),
                ("sale_delay", Val::Float(0.0)),
                ("weight", Val::Float(round2(plan.cost.sqrt() / 4.0))),
            ];
            if detailed {
                values.push(("detailed_type", self.states.get(storable_type)));
            }
            if is_storable {
                values.push(("is_storable", Val::Bool(true)));
            }
            if template.opt("uom_po_id").is_some() {
                values.push(("uom_po_id", uom.clone()));
            }
            let template_id = template.insert_named(self.store, at, values)?;
            let product_id = product.insert_named(
                self.store,
                at,
                vec![
                    ("product_tmpl_id", Val::Id(template_id)),
                    ("default_code", Val::str(&code)),
                    ("barcode", Val::str(&format!("54{:011}", index + 1))),
                ],
            )?;
            let mut supplierinfo = 0;
            if !self.suppliers.is_empty() {
                let primary = plan.supplier;
                let mut rng = stream(self.params.seed, 2, index as u64);
                let mut sellers = vec![(primary, 1, plan.cost)];
                if self.suppliers.len() > 1 && rng.random_bool(0.25) {
                    let other = (primary + 1 + rng.random_range(0..self.suppliers.len() - 1))
                        % self.suppliers.len();
                    sellers.push((other, 2, round2(plan.cost * rng.random_range(1.02..1.15))));
                }
                for (s, sequence, price) in sellers {
                    let id = seller.insert_named(
                        self.store,
                        at,
                        vec![
                            ("partner_id", Val::Id(self.suppliers[s].partner)),
                            ("product_tmpl_id", Val::Id(template_id)),
                            ("product_code", Val::str(&format!("V{}-{code}", s + 1))),
                            ("sequence", Val::Int(sequence)),
                            ("min_qty", Val::Float(plan.min_qty)),
                            ("price", Val::Float(price)),
                            ("delay", Val::Int(i64::from(self.suppliers[s].delay))),
                        ],
                    )?;
                    if sequence == 1 {
                        supplierinfo = id;
                    }
                }
            }
            let plan = &mut self.plans[index];
            plan.product = product_id;
            plan.supplierinfo = supplierinfo;
            if plan.spike {
                self.summary.exceptions.spike_products.push(product_id);
            }
            if plan.stockout {
                self.summary.exceptions.stockout_products.push(product_id);
            }
            for w in 0..warehouses {
                self.simulate(index, w, &line, line_uom)?;
            }
        }
        Ok(())
    }

    fn category_all(&mut self, category: &Maker, at: DateTime) -> Result<i64, DatasetError> {
        let slot = category.slot("name")?;
        let table = &self.store.tables[category.mi];
        let existing = table.ids().find(|&id| {
            table
                .get(id)
                .is_some_and(|row| row.vals[slot].as_str() == Some("All"))
        });
        match existing {
            Some(id) => Ok(id),
            None => category.insert_named(self.store, at, vec![("name", Val::str("All"))]),
        }
    }

    /// Runs one product in one warehouse through the history: customer
    /// deliveries capped by stock on hand (the rest is lost), weekly or
    /// fortnightly reviews ordering up to S, receipts on their arrival day.
    fn simulate(
        &mut self,
        index: usize,
        w: usize,
        line: &Maker,
        line_uom: Option<usize>,
    ) -> Result<(), DatasetError> {
        let horizon = self.calendar.horizon;
        let plan = &self.plans[index];
        let warehouse = &self.warehouses[w];
        let (warehouse_id, stock, out_type) = (warehouse.id, warehouse.stock, warehouse.out_type);
        let mut rng = stream(self.params.seed, 3, (index * 64 + w) as u64);
        let supplier_index = plan.supplier;
        let has_supplier = supplier_index < self.suppliers.len();
        let (mut reorder, mut up_to) = if has_supplier {
            policy(plan, &self.suppliers[supplier_index], &self.calendar, w, 0)
        } else {
            let demand = plan.daily_demand(&self.calendar, w, 0);
            (0.0, (demand * ORDER_COVER_DAYS).ceil())
        };
        let blocked_from = if plan.stockout && w == plan.home && has_supplier {
            let supplier = &self.suppliers[supplier_index];
            horizon - (supplier.delay + supplier.worst_lateness + 14)
        } else {
            i32::MAX
        };
        let product = plan.product;
        let display = plan.display.clone();
        let price = plan.cost;
        let base_rate = plan.rate * plan.shares[w] * 7.0 / 5.0;
        let list_key = supplier_index * self.warehouses.len() + w;
        let slot_list: Vec<usize> = if has_supplier {
            self.slot_lists[list_key]
                .iter()
                .copied()
                .filter(|&s| !self.slots[s].extra)
                .collect()
        } else {
            Vec::new()
        };
        let mut next_slot = slot_list
            .iter()
            .position(|&s| self.slots[s].order_day >= 0)
            .unwrap_or(slot_list.len());
        let mut on_hand = up_to;
        let mut last_receipt = None;
        let mut pipeline: Vec<(i32, f64, usize, i64)> = Vec::new();
        let empty = Val::False;
        if on_hand > 0.0 {
            self.moves.insert(
                self.store,
                &self.states,
                MoveRow {
                    name: self.adjustment.clone(),
                    reference: self.adjustment.clone(),
                    product,
                    demand: on_hand,
                    quantity: on_hand,
                    state: "done",
                    date: self.calendar.at(0, 7, 0),
                    deadline: None,
                    from: self.inventory_location,
                    to: stock,
                    picking: None,
                    picking_type: None,
                    warehouse: warehouse_id,
                    origin: empty.clone(),
                    purchase_line: None,
                    sale_line: None,
                    partner: None,
                },
            );
            last_receipt = Some(self.calendar.at(0, 7, 0));
        }
        for day in 0..horizon {
            // Receipts arrive in the morning.
            let mut i = 0;
            while i < pipeline.len() {
                if pipeline[i].0 <= day {
                    let (_, qty, slot, line_id) = pipeline.swap_remove(i);
                    on_hand += qty;
                    last_receipt = Some(self.receive(slot, line_id, product, qty, &display));
                } else {
                    i += 1;
                }
            }
            let plan = &self.plans[index];
            if self.calendar.is_workday(day) {
                let mut rate = base_rate * plan.season(&self.calendar, day);
                let spiking = plan.spike && w == plan.home && day >= horizon - SPIKE_DAYS;
                if spiking {
                    rate *= SPIKE_FACTOR;
                }
                let events = poisson(&mut rng, rate);
                for _ in 0..events {
                    let mut size = plan.draw_size(&mut rng);
                    if spiking {
                        size = (size * 1.5).round();
                    }
                    let delivered = size.min(on_hand);
                    if delivered <= 0.0 {
                        continue;
                    }
                    on_hand -= delivered;
                    let customer = if self.customers.is_empty() {
                        None
                    } else {
                        Some(self.customers[rng.random_range(0..self.customers.len())])
                    };
                    let (picking, reference) = self.deliveries.get(
                        self.store,
                        &self.calendar,
                        &self.states,
                        &self.warehouses[w],
                        (w, day, self.customer_location),
                    )?;
                    let hour = rng.random_range(8..17);
                    let minute = rng.random_range(0..59);
                    self.moves.insert(
                        self.store,
                        &self.states,
                        MoveRow {
                            name: display.clone(),
                            reference,
                            product,
                            demand: delivered,
                            quantity: delivered,
                            state: "done",
                            date: self.calendar.at(day, hour, minute),
                            deadline: None,
                            from: stock,
                            to: self.customer_location,
                            picking: Some(picking),
                            picking_type: Some(out_type),
                            warehouse: warehouse_id,
                            origin: empty.clone(),
                            purchase_line: None,
                            sale_line: None,
                            partner: customer,
                        },
                    );
                    self.summary.done_deliveries += 1;
                }
            }
            // Review: order up to S when the inventory position is at or below s.
            while next_slot < slot_list.len() && self.slots[slot_list[next_slot]].order_day <= day {
                let slot_index = slot_list[next_slot];
                next_slot += 1;
                let slot = &self.slots[slot_index];
                let supplier = &self.suppliers[supplier_index];
                (reorder, up_to) = policy(&self.plans[index], supplier, &self.calendar, w, day);
                let blocked = slot.order_day >= blocked_from
                    || (blocked_from != i32::MAX && slot.arrival_day >= horizon - 7);
                let position = on_hand + pipeline.iter().map(|p| p.1).sum::<f64>();
                if blocked || position > reorder {
                    continue;
                }
                let min_qty = self.plans[index].min_qty.max(1.0);
                let qty = ((up_to - position) / min_qty).ceil().max(1.0) * min_qty;
                let arrival = slot.arrival_day;
                let planned = self.calendar.at(slot.planned_day, 10, 0);
                let (po, open) = (slot.po, slot.open(horizon));
                let mut values = vec![
                    (line.slot("order_id")?, Val::Id(po)),
                    (line.slot("name")?, display.clone()),
                    (line.slot("product_id")?, Val::Id(product)),
                    (line.slot("product_qty")?, Val::Float(qty)),
                    (line.slot("price_unit")?, Val::Float(price)),
                    (line.slot("date_planned")?, Val::Datetime(planned)),
                    (
                        line.slot("qty_received")?,
                        Val::Float(if open { 0.0 } else { qty }),
                    ),
                ];
                if let Some(uom) = line_uom {
                    values.push((uom, Val::Id(1)));
                }
                let ordered = self.calendar.at(slot.order_day, 9, 0);
                let line_id = line.insert(self.store, ordered, values);
                self.slots[slot_index].lines += 1;
                if open {
                    self.pending_receipt(slot_index, line_id, product, qty, &display);
                } else if arrival <= day {
                    on_hand += qty;
                    last_receipt = Some(self.receive(slot_index, line_id, product, qty, &display));
                } else {
                    pipeline.push((arrival, qty, slot_index, line_id));
                }
            }
        }
        // Orders still travelling at the end belong to open slots by construction.
        for (_, qty, slot, line_id) in pipeline {
            self.pending_receipt(slot, line_id, product, qty, &display);
        }
        let position = &mut self.positions[index * self.warehouses.len() + w];
        position.on_hand = on_hand;
        position.last_receipt = last_receipt;
        position.reorder = reorder;
        position.up_to = up_to;
        Ok(())
    }

    fn receive(
        &mut self,
        slot: usize,
        line: i64,
        product: i64,
        qty: f64,
        display: &Val,
    ) -> DateTime {
        let horizon = self.calendar.horizon;
        let slot = &self.slots[slot];
        debug_assert!(!slot.open(horizon));
        let warehouse = &self.warehouses[slot.warehouse];
        let arrived = self.calendar.at(slot.arrival_day, 10, slot.arrival_minute);
        self.moves.insert(
            self.store,
            &self.states,
            MoveRow {
                name: display.clone(),
                reference: slot.picking_name.clone(),
                product,
                demand: qty,
                quantity: qty,
                state: "done",
                date: arrived,
                deadline: Some(self.calendar.at(slot.planned_day, 10, 0)),
                from: self.supplier_location,
                to: warehouse.stock,
                picking: Some(slot.picking),
                picking_type: Some(warehouse.in_type),
                warehouse: warehouse.id,
                origin: slot.name.clone(),
                purchase_line: Some(line),
                sale_line: None,
                partner: Some(self.suppliers[slot.supplier].partner),
            },
        );
        self.summary.done_receipts += 1;
        arrived
    }

    fn pending_receipt(&mut self, slot: usize, line: i64, product: i64, qty: f64, display: &Val) {
        let slot = &self.slots[slot];
        let warehouse = &self.warehouses[slot.warehouse];
        let planned = self.calendar.at(slot.planned_day, 10, 0);
        // Odoo 17+ shows incoming moves as reserved for their full demand; 16's
        // quantity_done stays 0 until validation.
        let quantity = if self.version >= OdooVersion::V17 {
            qty
        } else {
            0.0
        };
        self.moves.insert(
            self.store,
            &self.states,
            MoveRow {
                name: display.clone(),
                reference: slot.picking_name.clone(),
                product,
                demand: qty,
                quantity,
                state: "assigned",
                date: planned,
                deadline: Some(planned),
                from: self.supplier_location,
                to: warehouse.stock,
                picking: Some(slot.picking),
                picking_type: Some(warehouse.in_type),
                warehouse: warehouse.id,
                origin: slot.name.clone(),
                purchase_line: Some(line),
                sale_line: None,
                partner: Some(self.suppliers[slot.supplier].partner),
            },
        );
        self.summary.pending_receipts += 1;
    }

    /// Open orders no product happened to order on still get a line, so every
    /// open purchase order the parameters ask for exists.
    fn top_up_open_orders(&mut self) -> Result<(), DatasetError> {
        let horizon = self.calendar.horizon;
        let line = Maker::new(self.store, "purchase.order.line")?;
        let seller = Maker::new(self.store, "product.supplierinfo")?;
        let line_uom = line.opt("product_uom").or(line.opt("product_uom_id"));
        for slot_index in 0..self.slots.len() {
            let slot = &self.slots[slot_index];
            if slot.lines > 0 || !slot.open(horizon) {
                continue;
            }
            let supplier = slot.supplier;
            let candidates: Vec<usize> = (0..self.plans.len())
                .filter(|&i| self.plans[i].supplier == supplier && !self.plans[i].stockout)
                .collect();
            let candidates = if candidates.is_empty() {
                (0..self.plans.len())
                    .filter(|&i| !self.plans[i].stockout)
                    .collect()
            } else {
                candidates
            };
            if candidates.is_empty() {
                continue;
            }
            let index = candidates[self.rng.random_range(0..candidates.len())];
            let plan = &self.plans[index];
            let (product, display, cost) = (plan.product, plan.display.clone(), plan.cost);
            let qty = plan.min_qty.max(1.0) * f64::from(self.rng.random_range(1..=3));
            let ordered = self.calendar.at(slot.order_day, 9, 0);
            if plan.supplier != supplier {
                let template = self.product_template(product);
                seller.insert_named(
                    self.store,
                    ordered,
                    vec![
                        ("partner_id", Val::Id(self.suppliers[supplier].partner)),
                        ("product_tmpl_id", Val::Id(template)),
                        ("sequence", Val::Int(3)),
                        ("min_qty", Val::Float(self.plans[index].min_qty)),
                        ("price", Val::Float(round2(cost * 1.1))),
                        ("delay", Val::Int(i64::from(self.suppliers[supplier].delay))),
                    ],
                )?;
            }
            let slot = &self.slots[slot_index];
            let mut values = vec![
                (line.slot("order_id")?, Val::Id(slot.po)),
                (line.slot("name")?, display.clone()),
                (line.slot("product_id")?, Val::Id(product)),
                (line.slot("product_qty")?, Val::Float(qty)),
                (line.slot("price_unit")?, Val::Float(cost)),
                (
                    line.slot("date_planned")?,
                    Val::Datetime(self.calendar.at(slot.planned_day, 10, 0)),
                ),
                (line.slot("qty_received")?, Val::Float(0.0)),
            ];
            if let Some(uom) = line_uom {
                values.push((uom, Val::Id(1)));
            }
            let line_id = line.insert(self.store, ordered, values);
            self.slots[slot_index].lines += 1;
            self.pending_receipt(slot_index, line_id, product, qty, &display);
        }
        Ok(())
    }

    fn product_template(&self, product: i64) -> i64 {
        self.store
            .model_index("product.product")
            .map(|mi| self.store.slot_value(mi, product, "product_tmpl_id"))
            .ok()
            .and_then(|v| v.as_id())
            .unwrap_or(0)
    }

    fn drop_empty_slots(&mut self) -> Result<(), DatasetError> {
        let horizon = self.calendar.horizon;
        let order = self
            .store
            .model_index("purchase.order")
            .map_err(|_| DatasetError::MissingModel("purchase.order".into()))?;
        let picking = self
            .store
            .model_index("stock.picking")
            .map_err(|_| DatasetError::MissingModel("stock.picking".into()))?;
        for slot in &self.slots {
            if slot.lines == 0 {
                self.store.remove(order, slot.po);
                self.store.remove(picking, slot.picking);
            } else if slot.open(horizon) {
                self.summary.open_purchase_orders += 1;
                if slot.planned_day < horizon {
                    self.summary.late_purchase_orders += 1;
                }
            } else {
                self.summary.done_purchase_orders += 1;
            }
        }
        Ok(())
    }

    /// Confirmed sale orders due in the coming weeks, with their waiting
    /// deliveries reserved first come, first served. The first orders carry
    /// the stock-out products, for more than there is: the order at risk.
    fn open_sale_orders(&mut self) -> Result<(), DatasetError> {
        let warehouses = self.warehouses.len();
        self.reserved = vec![0.0; self.plans.len() * warehouses];
        if warehouses == 0 {
            return Ok(());
        }
        let order = Maker::new(self.store, "sale.order")?;
        let line = Maker::new(self.store, "sale.order.line")?;
        let picking = Maker::new(self.store, "stock.picking")?;
        let locked = order.opt("locked");
        let line_uom = line.opt("product_uom").or(line.opt("product_uom_id"));
        let mut stockout_by_warehouse: Vec<(usize, Vec<usize>)> = Vec::new();
        for (index, plan) in self.plans.iter().enumerate() {
            if !plan.stockout {
                continue;
            }
            match stockout_by_warehouse
                .iter_mut()
                .find(|(w, _)| *w == plan.home)
            {
                Some((_, list)) => list.push(index),
                None => stockout_by_warehouse.push((plan.home, vec![index])),
            }
        }
        let horizon = self.calendar.horizon;
        for k in 0..self.params.open_sale_orders {
            let (w, mut products) = match stockout_by_warehouse.get(k) {
                Some((w, list)) => (*w, list.clone()),
                None => (self.rng.random_range(0..warehouses), Vec::new()),
            };
            let at_risk = !products.is_empty();
            let extra = if self.plans.is_empty() {
                0
            } else {
                self.rng.random_range(1..=4usize)
            };
            let target = (products.len() + extra).min(self.plans.len());
            while products.len() < target {
                let candidate = self.rng.random_range(0..self.plans.len());
                if !products.contains(&candidate) {
                    products.push(candidate);
                }
            }
            let customer = if self.customers.is_empty() {
                1
            } else {
                self.customers[self.rng.random_range(0..self.customers.len())]
            };
            let ordered = self.calendar.at(
                horizon - self.rng.random_range(0..=6),
                self.rng.random_range(8..17),
                self.rng.random_range(0..59),
            );
            let due_in = if at_risk {
                self.rng.random_range(3..=9)
            } else {
                self.rng.random_range(1..=21)
            };
            let commitment = self.calendar.at(horizon + due_in, 12, 0);
            let name = Val::str(&self.store.next_sequence("S", 5));
            let warehouse = &self.warehouses[w];
            let (warehouse_id, stock, out_type, code) = (
                warehouse.id,
                warehouse.stock,
                warehouse.out_type,
                warehouse.code.clone(),
            );
            let so = order.insert_named(
                self.store,
                ordered,
                vec![
                    ("name", name.clone()),
                    ("partner_id", Val::Id(customer)),
                    ("date_order", Val::Datetime(ordered)),
                    ("commitment_date", Val::Datetime(commitment)),
                    ("state", self.states.get("sale")),
                    ("warehouse_id", Val::Id(warehouse_id)),
                ],
            )?;
            if let Some(slot) = locked {
                self.store.set_slot(order.mi, so, slot, Val::Bool(false));
            }
            if at_risk && self.summary.exceptions.at_risk_sale_order.is_none() {
                self.summary.exceptions.at_risk_sale_order = Some(so);
            }
            let picking_name = Val::str(&self.store.next_sequence(&format!("{code}/OUT/"), 5));
            let picking_id = picking.insert_named(
                self.store,
                ordered,
                vec![
                    ("name", picking_name.clone()),
                    ("origin", name.clone()),
                    ("state", self.states.get("confirmed")),
                    ("scheduled_date", Val::Datetime(commitment)),
                    ("date_deadline", Val::Datetime(commitment)),
                    ("partner_id", Val::Id(customer)),
                    ("picking_type_id", Val::Id(out_type)),
                    ("location_id", Val::Id(stock)),
                    ("location_dest_id", Val::Id(self.customer_location)),
                    ("sale_id", Val::Id(so)),
                ],
            )?;
            let mut all_reserved = true;
            for index in products {
                let pair = index * warehouses + w;
                let plan = &self.plans[index];
                let on_hand = self.positions[pair].on_hand;
                let qty = if plan.stockout && w == plan.home {
                    on_hand + plan.size_mean.ceil().max((on_hand * 0.5).ceil()).max(2.0)
                } else {
                    match plan.pattern {
                        DemandPattern::Intermittent => plan.draw_size(&mut self.rng),
                        _ => (plan.size_mean * self.rng.random_range(0.5..2.0))
                            .round()
                            .max(1.0),
                    }
                };
                let (product, display, price) = (plan.product, plan.display.clone(), plan.price);
                let available = (on_hand - self.reserved[pair]).max(0.0);
                let reserved = qty.min(available);
                self.reserved[pair] += reserved;
                let state = if reserved >= qty {
                    "assigned"
                } else if reserved > 0.0 {
                    "partially_available"
                } else {
                    "confirmed"
                };
                all_reserved &= reserved >= qty;
                let mut values = vec![
                    (line.slot("order_id")?, Val::Id(so)),
                    (line.slot("name")?, display.clone()),
                    (line.slot("product_id")?, Val::Id(product)),
                    (line.slot("product_uom_qty")?, Val::Float(qty)),
                    (line.slot("price_unit")?, Val::Float(price)),
                    (line.slot("qty_delivered")?, Val::Float(0.0)),
                ];
                if let Some(uom) = line_uom {
                    values.push((uom, Val::Id(1)));
                }
                let line_id = line.insert(self.store, ordered, values);
                let quantity = if self.version >= OdooVersion::V17 {
                    reserved
                } else {
                    0.0
                };
                self.moves.insert(
                    self.store,
                    &self.states,
                    MoveRow {
                        name: display,
                        reference: picking_name.clone(),
                        product,
                        demand: qty,
                        quantity,
                        state,
                        date: commitment,
                        deadline: Some(commitment),
                        from: stock,
                        to: self.customer_location,
                        picking: Some(picking_id),
                        picking_type: Some(out_type),
                        warehouse: warehouse_id,
                        origin: name.clone(),
                        purchase_line: None,
                        sale_line: Some(line_id),
                        partner: Some(customer),
                    },
                );
                self.summary.pending_deliveries += 1;
            }
            if all_reserved {
                picking.set(self.store, picking_id, "state", self.states.get("assigned"))?;
            }
            self.summary.open_sale_orders += 1;
        }
        Ok(())
    }

    /// One quant per product × warehouse holding stock, equal to the done moves.
    fn quants(&mut self) -> Result<(), DatasetError> {
        let quant = Maker::new(self.store, "stock.quant")?;
        let product = quant.slot("product_id")?;
        let location = quant.slot("location_id")?;
        let quantity = quant.slot("quantity")?;
        let reserved = quant.slot("reserved_quantity")?;
        let in_date = quant.slot("in_date")?;
        let warehouses = self.warehouses.len();
        let start = self.start();
        for (pair, position) in self.positions.iter().enumerate() {
            if position.on_hand <= 0.0 {
                continue;
            }
            let plan = &self.plans[pair / warehouses];
            let warehouse = &self.warehouses[pair % warehouses];
            let received = position.last_receipt.unwrap_or(start);
            quant.insert(
                self.store,
                received,
                [
                    (product, Val::Id(plan.product)),
                    (location, Val::Id(warehouse.stock)),
                    (quantity, Val::Float(position.on_hand)),
                    (reserved, Val::Float(self.reserved[pair])),
                    (in_date, Val::Datetime(received)),
                ],
            );
            self.summary.quants += 1;
        }
        Ok(())
    }

    /// Reordering rules on about a third of the product × warehouse pairs, and
    /// always where a stock-out is planted, so the rule is visibly breached.
    fn orderpoints(&mut self) -> Result<(), DatasetError> {
        let orderpoint = Maker::new(self.store, "stock.warehouse.orderpoint")?;
        let warehouses = self.warehouses.len();
        // Set up over the last week, one rule a second.
        let set_up = self.calendar.at(self.calendar.horizon - 7, 6, 0);
        for pair in 0..self.positions.len() {
            let now = after_seconds(set_up, pair);
            let (index, w) = (pair / warehouses, pair % warehouses);
            let plan = &self.plans[index];
            let mut rng = stream(self.params.seed, 4, pair as u64);
            let planted = plan.stockout && w == plan.home;
            if !planted && !rng.random_bool(0.3) {
                continue;
            }
            let position = &self.positions[pair];
            let min = position.reorder.max(0.0);
            let max = position.up_to.max(min);
            let trigger = if rng.random_bool(0.8) {
                "auto"
            } else {
                "manual"
            };
            let (product, supplierinfo) = (plan.product, plan.supplierinfo);
            let warehouse = &self.warehouses[w];
            let (warehouse_id, stock) = (warehouse.id, warehouse.stock);
            let name = Val::str(&self.store.next_sequence("OP/", 5));
            let mut values = vec![
                ("name", name),
                ("trigger", self.states.get(trigger)),
                ("warehouse_id", Val::Id(warehouse_id)),
                ("location_id", Val::Id(stock)),
                ("product_id", Val::Id(product)),
                ("product_min_qty", Val::Float(min)),
                ("product_max_qty", Val::Float(max)),
                ("route_id", Val::Id(self.buy_route)),
            ];
            if supplierinfo > 0 {
                values.push(("supplier_id", Val::Id(supplierinfo)));
            }
            orderpoint.insert_named(self.store, now, values)?;
            self.summary.orderpoints += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{DatasetParams, Edition, OdooVersion, seed_base};
    use super::*;
    use serde_json::{Map, json};

    fn config(seed: u64, version: OdooVersion) -> SimConfig {
        SimConfig {
            version,
            edition: Edition::Community,
            today: jiff::civil::date(2025, 3, 10),
            dataset: DatasetParams {
                seed,
                products: 60,
                warehouses: 2,
                history_days: 200,
                suppliers: 5,
                customers: 8,
                open_sale_orders: 9,
                open_purchase_orders: 7,
            },
            ..SimConfig::default()
        }
    }

    fn build(cfg: &SimConfig) -> (Store, DatasetSummary) {
        let origin = cfg.today.to_datetime(jiff::civil::time(9, 0, 0, 0));
        let mut store = Store::new(cfg.version, cfg.edition, cfg.today, origin);
        seed_base(&mut store, cfg);
        let summary = generate(&mut store, cfg).expect("data set");
        (store, summary)
    }

    /// Digest of every row, timestamp and sequence counter.
    fn fingerprint(store: &Store) -> String {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        for table in &store.tables {
            hasher.update(table.def.name.as_bytes());
            for id in table.ids() {
                if let Some(row) = table.get(id) {
                    hasher.update(
                        format!(
                            "{id}{:?}{}{}{}{}",
                            row.vals,
                            row.create_date,
                            row.write_date,
                            row.create_uid,
                            row.write_uid
                        )
                        .as_bytes(),
                    );
                }
            }
        }
        let mut sequences: Vec<_> = store.sequences.iter().collect();
        sequences.sort();
        hasher.update(format!("{sequences:?}").as_bytes());
        hex::encode(hasher.finalize())
    }

    fn mi(store: &Store, model: &str) -> usize {
        store.model_index(model).unwrap()
    }

    fn value(store: &Store, model: &str, id: i64, field: &str) -> Val {
        store.slot_value(mi(store, model), id, field)
    }

    fn ids(store: &Store, model: &str) -> Vec<i64> {
        store.table(model).unwrap().ids().collect()
    }

    fn float(store: &Store, model: &str, id: i64, field: &str) -> f64 {
        value(store, model, id, field).as_f64().unwrap_or(0.0)
    }

    fn text(store: &Store, model: &str, id: i64, field: &str) -> String {
        value(store, model, id, field)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn datetime(store: &Store, model: &str, id: i64, field: &str) -> DateTime {
        match value(store, model, id, field) {
            Val::Datetime(at) => at,
            other => panic!("{model}.{field} of {id} is {other:?}"),
        }
    }

    fn today(cfg: &SimConfig) -> DateTime {
        cfg.today.to_datetime(jiff::civil::Time::midnight())
    }

    #[test]
    fn same_seed_same_rows_other_seed_other_rows() {
        let (first, summary) = build(&config(7, OdooVersion::V17));
        let (second, again) = build(&config(7, OdooVersion::V17));
        let (other, _) = build(&config(8, OdooVersion::V17));
        assert_eq!(summary, again);
        assert_eq!(fingerprint(&first), fingerprint(&second));
        assert_ne!(fingerprint(&first), fingerprint(&other));
    }

    #[test]
    fn no_row_is_written_after_the_clock_starts() {
        let cfg = config(4, OdooVersion::V17);
        let (store, _) = build(&cfg);
        for table in &store.tables {
            for id in table.ids() {
                let row = table.get(id).expect("row");
                assert!(
                    row.write_date <= store.clock_origin && row.create_date <= store.clock_origin,
                    "{} {id} written at {} after {}",
                    table.def.name,
                    row.write_date,
                    store.clock_origin
                );
            }
        }
    }

    #[test]
    fn counts_follow_the_parameters() {
        let cfg = config(11, OdooVersion::V17);
        let (store, summary) = build(&cfg);
        let p = &cfg.dataset;
        assert_eq!(ids(&store, "product.product").len(), p.products);
        assert_eq!(ids(&store, "product.template").len(), p.products);
        assert_eq!(ids(&store, "stock.warehouse").len(), p.warehouses);
        let ranked = |field: &str| {
            ids(&store, "res.partner")
                .into_iter()
                .filter(|&id| float(&store, "res.partner", id, field) > 0.0)
                .count()
        };
        assert_eq!(ranked("supplier_rank"), p.suppliers);
        assert_eq!(ranked("customer_rank"), p.customers);
        let sale_orders = ids(&store, "sale.order");
        assert_eq!(sale_orders.len(), p.open_sale_orders);
        assert!(
            sale_orders
                .iter()
                .all(|&id| text(&store, "sale.order", id, "state") == "sale")
        );
        // Open = some line not fully received.
        let mut open: Vec<i64> = ids(&store, "purchase.order.line")
            .into_iter()
            .filter(|&l| {
                float(&store, "purchase.order.line", l, "qty_received")
                    < float(&store, "purchase.order.line", l, "product_qty")
            })
            .filter_map(|l| value(&store, "purchase.order.line", l, "order_id").as_id())
            .collect();
        open.sort();
        open.dedup();
        assert_eq!(open.len(), p.open_purchase_orders);
        assert_eq!(summary.open_purchase_orders, p.open_purchase_orders);
        assert_eq!(summary.open_sale_orders, p.open_sale_orders);
        assert_eq!(summary.products, p.products);
        assert!(summary.done_deliveries > 100, "{summary:?}");
        assert!(summary.done_receipts > 10, "{summary:?}");
        assert!(summary.orderpoints > 0);
        // Every purchase order kept has lines and a receipt.
        for po in ids(&store, "purchase.order") {
            let lines = store
                .table("purchase.order.line")
                .unwrap()
                .ids()
                .filter(|&l| {
                    value(&store, "purchase.order.line", l, "order_id").as_id() == Some(po)
                })
                .count();
            assert!(lines > 0, "purchase order {po} has no lines");
        }
    }

    #[test]
    fn quants_equal_done_moves_and_never_go_negative() {
        let cfg = config(3, OdooVersion::V16);
        let (store, _) = build(&cfg);
        let internal: Vec<i64> = ids(&store, "stock.location")
            .into_iter()
            .filter(|&l| text(&store, "stock.location", l, "usage") == "internal")
            .collect();
        let mut net: HashMap<(i64, i64), f64> = HashMap::new();
        for id in ids(&store, "stock.move") {
            if text(&store, "stock.move", id, "state") != "done" {
                continue;
            }
            let product = value(&store, "stock.move", id, "product_id")
                .as_id()
                .unwrap();
            // Odoo 16 records the done quantity in quantity_done.
            let qty = float(&store, "stock.move", id, "quantity_done");
            assert!(qty > 0.0);
            let from = value(&store, "stock.move", id, "location_id")
                .as_id()
                .unwrap();
            let to = value(&store, "stock.move", id, "location_dest_id")
                .as_id()
                .unwrap();
            if internal.contains(&to) {
                *net.entry((product, to)).or_default() += qty;
            }
            if internal.contains(&from) {
                *net.entry((product, from)).or_default() -= qty;
            }
        }
        let mut quants: HashMap<(i64, i64), (f64, f64)> = HashMap::new();
        for id in ids(&store, "stock.quant") {
            let key = (
                value(&store, "stock.quant", id, "product_id")
                    .as_id()
                    .unwrap(),
                value(&store, "stock.quant", id, "location_id")
                    .as_id()
                    .unwrap(),
            );
            let quantity = float(&store, "stock.quant", id, "quantity");
            let reserved = float(&store, "stock.quant", id, "reserved_quantity");
            assert!(quantity > 0.0 && reserved >= 0.0 && reserved <= quantity);
            assert!(
                quants.insert(key, (quantity, reserved)).is_none(),
                "duplicate quant {key:?}"
            );
        }
        for (key, total) in &net {
            assert!(*total >= 0.0, "negative stock {key:?}: {total}");
            let quant = quants.get(key).map(|q| q.0).unwrap_or(0.0);
            assert!(
                (quant - total).abs() < 1e-9,
                "{key:?}: quant {quant}, moves {total}"
            );
        }
        for key in quants.keys() {
            assert!(net.contains_key(key), "quant without moves {key:?}");
        }
    }

    #[test]
    fn late_purchase_orders_and_supplier_prices() {
        let cfg = config(5, OdooVersion::V18);
        let (store, summary) = build(&cfg);
        let now = today(&cfg);
        let late_lines = ids(&store, "purchase.order.line")
            .into_iter()
            .filter(|&l| float(&store, "purchase.order.line", l, "qty_received") == 0.0)
            .filter(|&l| datetime(&store, "purchase.order.line", l, "date_planned") < now)
            .count();
        assert!(late_lines > 0);
        assert!(summary.late_purchase_orders > 0 && summary.late_purchase_orders < 7);
        let sellers: Vec<i64> = ids(&store, "product.supplierinfo")
            .into_iter()
            .filter_map(|s| value(&store, "product.supplierinfo", s, "product_tmpl_id").as_id())
            .collect();
        for template in ids(&store, "product.template") {
            assert!(
                sellers.contains(&template),
                "template {template} has no supplier"
            );
            assert_eq!(text(&store, "product.template", template, "type"), "consu");
            assert_eq!(
                value(&store, "product.template", template, "is_storable"),
                Val::Bool(true)
            );
        }
        // Pending receipts wait on open orders only.
        for id in ids(&store, "stock.move") {
            if text(&store, "stock.move", id, "state") == "assigned"
                && let Some(line) = value(&store, "stock.move", id, "purchase_line_id").as_id()
            {
                assert_eq!(
                    float(&store, "purchase.order.line", line, "qty_received"),
                    0.0
                );
            }
        }
    }

    #[test]
    fn planted_exceptions_are_there() {
        let cfg = config(9, OdooVersion::V17);
        let (store, summary) = build(&cfg);
        let planted = &summary.exceptions;
        assert!(planted.stockout_products.len() >= 3, "{planted:?}");
        assert_eq!(planted.spike_products.len(), 2);
        let now = today(&cfg);
        let two_weeks = now + jiff::Span::new().days(14);
        let moves = ids(&store, "stock.move");
        let field = |id: i64, name: &str| -> Val { value(&store, "stock.move", id, name) };
        let locations: Vec<i64> = ids(&store, "stock.warehouse")
            .into_iter()
            .filter_map(|w| value(&store, "stock.warehouse", w, "lot_stock_id").as_id())
            .collect();
        for &product in &planted.stockout_products {
            let mine: Vec<i64> = moves
                .iter()
                .copied()
                .filter(|&m| field(m, "product_id").as_id() == Some(product))
                .collect();
            // Projected: on hand + receipts due − deliveries due within two weeks.
            let short = locations.iter().any(|&location| {
                let on_hand: f64 = ids(&store, "stock.quant")
                    .into_iter()
                    .filter(|&q| {
                        value(&store, "stock.quant", q, "product_id").as_id() == Some(product)
                            && value(&store, "stock.quant", q, "location_id").as_id()
                                == Some(location)
                    })
                    .map(|q| float(&store, "stock.quant", q, "quantity"))
                    .sum();
                let due = |m: i64, side: &str| {
                    text(&store, "stock.move", m, "state") != "done"
                        && field(m, side).as_id() == Some(location)
                        && datetime(&store, "stock.move", m, "date") <= two_weeks
                };
                let sum = |side: &str| -> f64 {
                    mine.iter()
                        .filter(|&&m| due(m, side))
                        .map(|&m| float(&store, "stock.move", m, "product_uom_qty"))
                        .sum()
                };
                let (incoming, outgoing) = (sum("location_dest_id"), sum("location_id"));
                incoming == 0.0 && outgoing > on_hand
            });
            assert!(short, "stock-out product {product} is covered");
        }
        check_rest(&store, &cfg, &summary);
    }

    fn check_rest(store: &Store, cfg: &SimConfig, summary: &DatasetSummary) {
        let planted = &summary.exceptions;
        let so = planted.at_risk_sale_order.expect("an order at risk");
        assert_eq!(text(store, "sale.order", so, "state"), "sale");
        let now = today(cfg);
        let commitment = datetime(store, "sale.order", so, "commitment_date");
        assert!(commitment > now && commitment <= now + jiff::Span::new().days(14));
        // Spikes: the last 14 days sell well above the earlier 14-day average.
        let done_out = |product: i64, from: DateTime, to: DateTime| -> f64 {
            ids(store, "stock.move")
                .into_iter()
                .filter(|&m| {
                    value(store, "stock.move", m, "product_id").as_id() == Some(product)
                        && text(store, "stock.move", m, "state") == "done"
                        && text(store, "stock.move", m, "reference").contains("/OUT/")
                })
                .filter(|&m| {
                    let at = datetime(store, "stock.move", m, "date");
                    at >= from && at < to
                })
                .map(|m| float(store, "stock.move", m, "quantity"))
                .sum()
        };
        let start = now - jiff::Span::new().days(i64::from(cfg.dataset.history_days));
        let recent = now - jiff::Span::new().days(14);
        for &product in &planted.spike_products {
            let before = done_out(product, start, recent);
            let last = done_out(product, recent, now);
            let per_fortnight = before * 14.0 / f64::from(cfg.dataset.history_days - 14);
            assert!(
                last > 2.0 * per_fortnight,
                "{product}: {last} vs {per_fortnight}"
            );
        }
        // The late supplier's recent receipts came far later than promised.
        let supplier = planted.late_supplier.expect("a late supplier");
        let mut recent_delays = Vec::new();
        for m in ids(store, "stock.move") {
            if value(store, "stock.move", m, "partner_id").as_id() == Some(supplier)
                && text(store, "stock.move", m, "state") == "done"
            {
                let done = datetime(store, "stock.move", m, "date");
                let planned = datetime(store, "stock.move", m, "date_deadline");
                if done > now - jiff::Span::new().days(60) {
                    recent_delays.push((done - planned).get_days());
                }
            }
        }
        assert!(!recent_delays.is_empty());
        assert!(recent_delays.iter().all(|&d| d >= 4), "{recent_delays:?}");
    }

    #[test]
    fn required_fields_are_set_on_every_row() {
        for version in [OdooVersion::V16, OdooVersion::V19] {
            let (store, _) = build(&config(1, version));
            for table in &store.tables {
                for field in &table.def.fields {
                    let Some(slot) = field.slot() else { continue };
                    if !field.required
                        || field.ftype == FieldType::Boolean
                        || field.ftype.is_numeric()
                    {
                        continue;
                    }
                    for id in table.ids() {
                        let row = table.get(id).unwrap();
                        assert!(
                            !row.vals[slot].is_false(),
                            "{} {id} lacks {} on {version:?}",
                            table.def.name,
                            field.name
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn rule_domains_select_patterns_through_the_orm() {
        let cfg = config(2, OdooVersion::V17);
        let db = Database::new(cfg.clone());
        let mut kwargs = Map::new();
        kwargs.insert(
            "fields".into(),
            json!(["default_code", "categ_id", "qty_available"]),
        );
        let rows = db
            .execute_kw(
                ADMIN_UID,
                "product.product",
                "search_read",
                vec![json!([["categ_id.name", "=", "Seasonal"]])],
                kwargs,
            )
            .unwrap();
        let rows = rows.as_array().unwrap();
        assert!(!rows.is_empty() && rows.len() < cfg.dataset.products);
        assert!(rows.iter().all(|r| r["categ_id"][1] == "All / Seasonal"));
        let shape = db.dataset_shape();
        assert_eq!(shape.products, cfg.dataset.products);
        assert_eq!(shape.sale_orders, cfg.dataset.open_sale_orders);
        assert!(shape.stock_moves > 0 && shape.quants > 0);
    }
}
