//! The forms of 台账: one per kind of record, with inputs a canteen's staff can fill in quickly —
//! selects for the school's registered staff (on duty and not yet checked first), canteens,
//! meals, suppliers and the purchase batches of recent days; a temperature in ℃ with one
//! decimal; symptoms as checkboxes; times as `HH:MM` — and [`parse`], which turns a posted form
//! into the [`LedgerWrite`] of the admin API (every refusal in Chinese). What the record itself
//! must satisfy (a temperature between 34 and 43 ℃, a sample of at least 1 g…) is left to the
//! domain's own checks behind `record_as`, so a form and the CLI are refused with the same words.
//!
//! Field names carry the kind's prefix (`mc_staff`, `fs_dish`), so no two forms of the page share
//! a name. A refused form is drawn again open, with what the person typed and the reason.

use std::str::FromStr;

use maud::{Markup, html};
use protocol::ledger::{
    AccompaniedMeal, Companion, DisinfectMethod, Disinfection, FoodSample, HazardCheck, HazardLevel, LedgerKind,
    LedgerRecord, Meal, MorningCheck, PesticideTest, Purchase, Symptom,
};

use crate::api::ledgers::LedgerWrite;
use crate::console::layout::csrf_field;

/// A staff member as the morning check's select offers them.
#[derive(Clone, Debug)]
pub struct StaffChoice {
    pub id: String,
    pub name: String,
    pub role_zh: &'static str,
    pub on_duty: bool,
    /// Already has a morning check on the page's day.
    pub checked: bool,
    /// `None`: no health certificate; `Some(false)`: expired.
    pub cert_valid: Option<bool>,
}

impl StaffChoice {
    /// `张三（厨师）· 无健康证`.
    pub fn label(&self) -> String {
        let cert = match self.cert_valid {
            None => " · 无健康证",
            Some(false) => " · 健康证已过期",
            Some(true) => "",
        };
        format!("{}（{}）{cert}", self.name, self.role_zh)
    }
}

/// A supplier as the purchase form offers it.
#[derive(Clone, Debug)]
pub struct SupplierChoice {
    pub id: String,
    pub name: String,
    /// The licence has expired (the option is shown, but cannot be chosen).
    pub expired: bool,
    /// `2027-06-30`.
    pub until: String,
}

/// What the forms offer to choose from, and their defaults.
#[derive(Clone, Debug, Default)]
pub struct Choices {
    /// On duty and unchecked first, then on duty and checked, then off duty.
    pub staff: Vec<StaffChoice>,
    /// `(id, name)`.
    pub canteens: Vec<(String, String)>,
    pub suppliers: Vec<SupplierChoice>,
    /// Purchase records of recent days: `(record id, label)`, newest first.
    pub batches: Vec<(String, String)>,
    /// The page's day is today: times default to now.
    pub today: bool,
    /// Now, `07:42` (China time).
    pub now_hhmm: String,
    /// The page's day, `2026-12-01`.
    pub date: String,
    /// The signed-in person's name (the default checker of a hazard check).
    pub me_name: String,
}

/// A refused form, drawn again with what was typed.
#[derive(Clone, Debug, Default)]
pub struct Sticky {
    pub kind: Option<LedgerKind>,
    pub pairs: Vec<(String, String)>,
    pub error: String,
}

impl Sticky {
    fn is(&self, k: LedgerKind) -> bool {
        self.kind == Some(k)
    }

    /// What was typed into `name` of form `k` (only for the refused form).
    fn get(&self, k: LedgerKind, name: &str) -> Option<&str> {
        if !self.is(k) {
            return None;
        }
        self.pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The value to show in `name` of form `k`: what was typed, or `default`.
    fn val(&self, k: LedgerKind, name: &str, default: &str) -> String {
        self.get(k, name).unwrap_or(default).to_string()
    }

    /// Whether the checkbox `name` = `value` of form `k` is ticked: as posted, or `default`.
    fn ticked(&self, k: LedgerKind, name: &str, value: &str, default: bool) -> bool {
        if self.is(k) { self.pairs.iter().any(|(n, v)| n == name && v == value) } else { default }
    }
}

/// The prefix of the field names of a kind's form (the API's record-id prefix too).
pub fn prefix(k: LedgerKind) -> &'static str {
    k.short()
}

/// The meal a person most likely records now (`07:42` → breakfast).
fn meal_now(hhmm: &str) -> Meal {
    match hhmm.get(..2).and_then(|h| h.parse::<u32>().ok()).unwrap_or(12) {
        0..=9 => Meal::Breakfast,
        10..=15 => Meal::Lunch,
        _ => Meal::Dinner,
    }
}

/// The form of one kind, folded into a `<details>` (open when it was just used or refused).
pub fn form(k: LedgerKind, c: &Choices, st: &Sticky, csrf: &str, open: bool) -> Markup {
    let missing = match k {
        LedgerKind::MorningCheck if c.staff.is_empty() => {
            Some("本校还没有登记从业人员，请先在“单位与学校”登记后再做晨检。")
        }
        LedgerKind::FoodSample | LedgerKind::AccompaniedMeal | LedgerKind::Disinfection if c.canteens.is_empty() => {
            Some("本校还没有登记食堂，请先登记食堂。")
        }
        LedgerKind::Purchase if c.suppliers.is_empty() => {
            Some("本校还没有登记供应商，请先登记供应商及其食品经营许可证后再登记采购。")
        }
        _ => None,
    };
    let title = match k {
        LedgerKind::MorningCheck => "登记晨检",
        LedgerKind::FoodSample => "登记留样",
        LedgerKind::Purchase => "登记采购验收及证票",
        LedgerKind::AccompaniedMeal => "登记陪餐",
        LedgerKind::HazardCheck => "登记隐患排查",
        LedgerKind::Disinfection => "登记消毒",
        LedgerKind::PesticideTest => "登记农残快检",
    };
    html! {
        details.add id={ "add-" (k.as_str()) } open[open || st.is(k)] {
            summary { "＋ " (title) }
            @if let Some(m) = missing {
                p.note { (m) }
            } @else {
                form.ledger method="post" action="/ledger" {
                    (csrf_field(csrf))
                    input type="hidden" name="kind" value=(k.as_str());
                    input type="hidden" name="date" value=(c.date);
                    @if st.is(k) && !st.error.is_empty() { p.form-error role="alert" { "未保存：" (st.error) } }
                    div.fields { (fields(k, c, st)) }
                    div.actions {
                        button type="submit" { "保存" (k.zh()) "记录" }
                        @if !c.today { span.muted { "记入 " (c.date) " 的台账" } }
                    }
                }
            }
        }
    }
}

fn time_field(k: LedgerKind, label: &str, c: &Choices, st: &Sticky) -> Markup {
    let name = format!("{}_at", prefix(k));
    let default = if c.today { c.now_hhmm.as_str() } else { "" };
    let hint = if c.today { "不填即为现在" } else { "不填记为当天 12:00" };
    html! {
        label { span { (label) " " small.muted { (hint) } }
            input name=(name) value=(st.val(k, &name, default)) inputmode="numeric" maxlength="5"
                pattern="[0-2]?[0-9][:：][0-5][0-9]" title="时:分，如 07:10" placeholder="时:分，如 07:10"; }
    }
}

fn canteen_field(k: LedgerKind, c: &Choices, st: &Sticky) -> Markup {
    let name = format!("{}_canteen", prefix(k));
    let chosen = st.val(k, &name, c.canteens.first().map_or("", |(id, _)| id.as_str()));
    html! {
        label { "食堂"
            select name=(name) required {
                @if c.canteens.len() > 1 { option value="" { "请选择" } }
                @for (id, n) in &c.canteens { option value=(id) selected[*id == chosen] { (n) } }
            }
        }
    }
}

fn meal_field(k: LedgerKind, c: &Choices, st: &Sticky) -> Markup {
    let name = format!("{}_meal", prefix(k));
    let chosen = st.val(k, &name, meal_now(&c.now_hhmm).as_str());
    html! {
        label { "餐次"
            select name=(name) { @for m in Meal::ALL { option value=(m.as_str()) selected[m.as_str() == chosen] { (m.zh()) } } }
        }
    }
}

/// A text input: `label`, name, default, maxlength, required, placeholder.
fn text_field(
    k: LedgerKind,
    st: &Sticky,
    label: &str,
    name: &str,
    default: &str,
    required: bool,
    hint: &str,
) -> Markup {
    html! {
        label { (label)
            input name=(name) value=(st.val(k, name, default)) maxlength="120" required[required] placeholder=(hint); }
    }
}

/// The names of the school's staff, offered while typing who did something.
fn staff_names(c: &Choices) -> Markup {
    html! {
        datalist #staff-names {
            @for s in &c.staff { option value=(s.name) { (s.role_zh) } }
        }
    }
}

fn fields(k: LedgerKind, c: &Choices, st: &Sticky) -> Markup {
    match k {
        LedgerKind::MorningCheck => morning_check(c, st),
        LedgerKind::FoodSample => food_sample(c, st),
        LedgerKind::Purchase => purchase(c, st),
        LedgerKind::AccompaniedMeal => accompanied_meal(c, st),
        LedgerKind::HazardCheck => hazard_check(c, st),
        LedgerKind::Disinfection => disinfection(c, st),
        LedgerKind::PesticideTest => pesticide_test(c, st),
    }
}

fn morning_check(c: &Choices, st: &Sticky) -> Markup {
    let k = LedgerKind::MorningCheck;
    let first = c.staff.iter().find(|s| s.on_duty && !s.checked).or(c.staff.first());
    let chosen = st.val(k, "mc_staff", first.map_or("", |s| s.id.as_str()));
    let groups: [(&str, Vec<&StaffChoice>); 3] = [
        ("在岗 · 今日未晨检", c.staff.iter().filter(|s| s.on_duty && !s.checked).collect()),
        ("在岗 · 已晨检", c.staff.iter().filter(|s| s.on_duty && s.checked).collect()),
        ("不在岗", c.staff.iter().filter(|s| !s.on_duty).collect()),
    ];
    html! {
        label { "人员"
            select name="mc_staff" required {
                @for (g, list) in &groups { @if !list.is_empty() {
                    optgroup label=(g) { @for s in list { option value=(s.id) selected[s.id == chosen] { (s.label()) } } }
                } }
            }
        }
        label { span { "体温（℃）" small.muted { "保留一位小数" } }
            input name="mc_temp" value=(st.val(k, "mc_temp", "")) inputmode="decimal" maxlength="8" required placeholder="如 36.5"; }
        (time_field(k, "晨检时间", c, st))
        fieldset.wide {
            legend { "症状（没有则不勾）" }
            @for s in Symptom::ALL {
                label.inline { input type="checkbox" name="mc_symptom" value=(s.as_str()) checked[st.ticked(k, "mc_symptom", s.as_str(), false)]; (s.zh()) }
            }
        }
        label.inline.wide { input type="checkbox" name="mc_sent_home" value="1" checked[st.ticked(k, "mc_sent_home", "1", false)]; "体温或症状异常，已劝其离岗（当日不上岗）" }
        label.wide { "备注" input name="mc_note" value=(st.val(k, "mc_note", "")) maxlength="200"; }
    }
}

fn food_sample(c: &Choices, st: &Sticky) -> Markup {
    let k = LedgerKind::FoodSample;
    html! {
        (canteen_field(k, c, st))
        (meal_field(k, c, st))
        label { "菜品名称" input name="fs_dish" value=(st.val(k, "fs_dish", "")) maxlength="60" required placeholder="如 番茄炒蛋"; }
        label { span { "留样重量（克）" small.muted { "每样不少于 125 克" } }
            input name="fs_grams" value=(st.val(k, "fs_grams", "")) inputmode="numeric" maxlength="6" required placeholder="如 150"; }
        (time_field(k, "留样时间", c, st))
        label { "留样人" input name="fs_by" list="staff-names" value=(st.val(k, "fs_by", "")) maxlength="40" required; }
        label.inline.wide { input type="checkbox" name="fs_cold" value="1" checked[st.ticked(k, "fs_cold", "1", true)]; "已放入留样专用冰箱冷藏（0–8℃，保存 48 小时以上）" }
        fieldset.wide {
            legend { "所用原料的采购批次（可多选，用于追溯）" }
            @if c.batches.is_empty() { span.muted { "近 7 天没有采购记录。" } }
            @for (id, label) in &c.batches {
                label.inline { input type="checkbox" name="fs_batch" value=(id) checked[st.ticked(k, "fs_batch", id, false)]; (label) }
            }
        }
        (staff_names(c))
    }
}

fn purchase(c: &Choices, st: &Sticky) -> Markup {
    let k = LedgerKind::Purchase;
    let first = c.suppliers.iter().find(|s| !s.expired).map_or("", |s| s.id.as_str());
    let chosen = st.val(k, "pu_supplier", if c.suppliers.len() == 1 { first } else { "" });
    html! {
        label { "供应商"
            select name="pu_supplier" required {
                @if c.suppliers.len() > 1 { option value="" { "请选择" } }
                @for s in &c.suppliers {
                    option value=(s.id) selected[s.id == chosen] disabled[s.expired] {
                        (s.name) @if s.expired { "（许可证已于 " (s.until) " 过期，不得采购）" }
                    }
                }
            }
        }
        (text_field(k, st, "品名", "pu_item", "", true, "如 大米"))
        (text_field(k, st, "批次号", "pu_batch", "", true, "如 20261201-01"))
        label { "数量" input name="pu_qty" value=(st.val(k, "pu_qty", "")) inputmode="decimal" maxlength="12" required placeholder="如 12.5"; }
        label { "单位"
            input name="pu_unit" list="units" value=(st.val(k, "pu_unit", "kg")) maxlength="10" required;
            datalist #units { @for u in ["kg", "斤", "箱", "袋", "件", "桶", "L"] { option value=(u); } }
        }
        (time_field(k, "验收时间", c, st))
        (text_field(k, st, "检验合格证明编号", "pu_cert", "", false, "未取得可先空着，24 小时内补齐"))
        (text_field(k, st, "票据（发票或送货单）编号", "pu_invoice", "", false, "未取得可先空着，24 小时内补齐"))
    }
}

fn accompanied_meal(c: &Choices, st: &Sticky) -> Markup {
    let k = LedgerKind::AccompaniedMeal;
    let companion = st.val(k, "am_companion", Companion::Leader.as_str());
    let rating = st.val(k, "am_rating", "0");
    html! {
        (canteen_field(k, c, st))
        (meal_field(k, c, st))
        label { "陪餐类别"
            select name="am_companion" { @for x in Companion::ALL { option value=(x.as_str()) selected[x.as_str() == companion] { (x.zh()) } } }
        }
        (text_field(k, st, "陪餐人", "am_name", "", true, "如 王校长、三年级二班家长 李女士"))
        label { "评价"
            select name="am_rating" {
                @for (v, t) in [("0", "未评分"), ("5", "5 分 很好"), ("4", "4 分 较好"), ("3", "3 分 一般"), ("2", "2 分 较差"), ("1", "1 分 很差")] {
                    option value=(v) selected[v == rating] { (t) }
                }
            }
        }
        label.wide { "陪餐意见（饭菜质量、卫生、学生反映等）" textarea name="am_remarks" maxlength="200" { (st.val(k, "am_remarks", "")) } }
    }
}

fn hazard_check(c: &Choices, st: &Sticky) -> Markup {
    let k = LedgerKind::HazardCheck;
    let level = st.val(k, "hz_level", HazardLevel::Daily.as_str());
    html! {
        label { "类别"
            select name="hz_level" { @for x in HazardLevel::ALL { option value=(x.as_str()) selected[x.as_str() == level] { (x.zh()) } } }
        }
        label { "检查项数" input name="hz_items" value=(st.val(k, "hz_items", "")) inputmode="numeric" maxlength="4" required placeholder="如 20"; }
        label { "发现问题项数" input name="hz_found" value=(st.val(k, "hz_found", "0")) inputmode="numeric" maxlength="4" required; }
        label { "检查人" input name="hz_by" list="staff-names" value=(st.val(k, "hz_by", &c.me_name)) maxlength="40" required; }
        label.wide { "发现的问题（有问题时必填）" textarea name="hz_problems" maxlength="300" { (st.val(k, "hz_problems", "")) } }
        label.wide { "整改措施（有问题时必填）" textarea name="hz_measures" maxlength="300" { (st.val(k, "hz_measures", "")) } }
    }
}

fn disinfection(c: &Choices, st: &Sticky) -> Markup {
    let k = LedgerKind::Disinfection;
    let method = st.val(k, "ds_method", DisinfectMethod::Heat.as_str());
    html! {
        (canteen_field(k, c, st))
        label { "消毒对象"
            input name="ds_target" list="targets" value=(st.val(k, "ds_target", "餐饮具")) maxlength="40" required;
            datalist #targets { @for t in ["餐饮具", "砧板刀具", "操作间环境", "留样冰箱", "售餐台", "餐桌"] { option value=(t); } }
        }
        label { "消毒方式"
            select name="ds_method" { @for x in DisinfectMethod::ALL { option value=(x.as_str()) selected[x.as_str() == method] { (x.zh()) } } }
        }
        label { "时长（分钟）" input name="ds_minutes" value=(st.val(k, "ds_minutes", "")) inputmode="numeric" maxlength="4" required placeholder="如 15"; }
        (time_field(k, "消毒时间", c, st))
        label { "消毒人" input name="ds_by" list="staff-names" value=(st.val(k, "ds_by", "")) maxlength="40" required; }
    }
}

fn pesticide_test(c: &Choices, st: &Sticky) -> Markup {
    let k = LedgerKind::PesticideTest;
    let purchase = st.val(k, "pt_purchase", "");
    html! {
        (text_field(k, st, "检测品名", "pt_item", "", true, "如 小白菜"))
        label { "对应采购批次"
            select name="pt_purchase" {
                option value="" { "不对应采购记录" }
                @for (id, label) in &c.batches { option value=(id) selected[*id == purchase] { (label) } }
            }
        }
        label { span { "抑制率（%）" small.muted { "≥ 50% 为阳性" } }
            input name="pt_pct" value=(st.val(k, "pt_pct", "")) inputmode="numeric" maxlength="4" required placeholder="0–100"; }
        label { "检测人" input name="pt_by" list="staff-names" value=(st.val(k, "pt_by", "")) maxlength="40" required; }
        label.wide { "阳性处理措施（阳性时必填：停用、退货、销毁…）" input name="pt_handling" value=(st.val(k, "pt_handling", "")) maxlength="200"; }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading a posted form

/// Full-width digits, points and colons (a Chinese input method's) as ASCII; trimmed.
pub fn ascii(s: &str) -> String {
    s.trim()
        .chars()
        .map(|c| match c {
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c),
            '．' | '。' => '.',
            '：' => ':',
            '％' => '%',
            c => c,
        })
        .collect()
}

/// A posted form's fields.
struct Posted<'a>(&'a [(String, String)]);

impl Posted<'_> {
    fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(n, _)| n == name).map_or("", |(_, v)| v.trim())
    }

    fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0.iter().filter(move |(n, _)| n == name).map(|(_, v)| v.trim())
    }

    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, v)| n == name && !v.trim().is_empty())
    }

    /// Free text up to `max` characters (empty allowed).
    fn text(&self, label: &str, name: &str, max: usize) -> Result<String, String> {
        crate::console::pages::field(label, self.get(name), max)
    }

    /// Free text that must be there.
    fn required(&self, label: &str, name: &str, max: usize) -> Result<String, String> {
        let v = self.text(label, name, max)?;
        if v.is_empty() { Err(format!("请填写“{label}”")) } else { Ok(v) }
    }

    /// One of a named enum's values (a select).
    fn choice<T: FromStr>(&self, label: &str, name: &str) -> Result<T, String> {
        let v = self.get(name);
        if v.is_empty() {
            return Err(format!("请选择“{label}”"));
        }
        v.parse::<T>().map_err(|_| format!("“{label}”没有“{}”这一项", cut(v)))
    }

    /// A whole number, with an optional unit after it (`150克`, `35%`).
    fn number<T: TryFrom<u64>>(&self, label: &str, name: &str, units: &[&str]) -> Result<T, String> {
        let raw = ascii(self.get(name));
        if raw.is_empty() {
            return Err(format!("请填写“{label}”"));
        }
        let mut t = raw.as_str();
        for u in units {
            t = t.strip_suffix(u).unwrap_or(t).trim_end();
        }
        let n: u64 = t.parse().map_err(|_| format!("“{label}”应为整数，收到“{}”", cut(&raw)))?;
        T::try_from(n).map_err(|_| format!("“{label}” {n} 太大"))
    }
}

fn cut(s: &str) -> String {
    s.chars().take(20).collect()
}

/// `36.5` (or `36.5℃`, `３６．５`) in tenths: 365. One decimal at most.
pub fn tenths(label: &str, text: &str) -> Result<u16, String> {
    let raw = ascii(text);
    let t = raw.trim_end_matches(['℃', '度']).trim_end_matches("°C").trim();
    if t.is_empty() {
        return Err(format!("请填写“{label}”"));
    }
    let shape = || format!("“{label}”请填写数字，保留一位小数，如 36.5；收到“{}”", cut(&raw));
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    if whole.is_empty() || whole.len() > 3 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(shape());
    }
    if frac.len() > 1 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(shape());
    }
    let w: u16 = whole.parse().map_err(|_| shape())?;
    let f: u16 = if frac.is_empty() { 0 } else { frac.parse().map_err(|_| shape())? };
    Ok(w * 10 + f)
}

/// `12.5` in thousandths: 12500. Three decimals at most.
pub fn thousandths(label: &str, text: &str) -> Result<u64, String> {
    let raw = ascii(text);
    if raw.is_empty() {
        return Err(format!("请填写“{label}”"));
    }
    let shape = || format!("“{label}”请填写数字，最多三位小数，如 12.5；收到“{}”", cut(&raw));
    let (whole, frac) = raw.split_once('.').unwrap_or((&raw, ""));
    if whole.is_empty() || whole.len() > 9 || frac.len() > 3 {
        return Err(shape());
    }
    if !whole.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(shape());
    }
    let w: u64 = whole.parse().map_err(|_| shape())?;
    let f: u64 = format!("{frac:0<3}").parse().map_err(|_| shape())?;
    Ok(w * 1000 + f)
}

/// A time of day `7:05` / `07:05` / `07：05` as `07:05`; empty is `None` (now, or noon of another
/// day).
pub fn hhmm(label: &str, text: &str) -> Result<Option<String>, String> {
    let raw = ascii(text);
    if raw.is_empty() {
        return Ok(None);
    }
    let bad = || format!("“{label}”请写成 时:分，如 07:10；收到“{}”", cut(&raw));
    let (h, m) = raw.split_once(':').ok_or_else(bad)?;
    let (h, m): (u32, u32) = (h.trim().parse().map_err(|_| bad())?, m.trim().parse().map_err(|_| bad())?);
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(Some(format!("{h:02}:{m:02}")))
}

/// The record a posted form of kind `k` describes, as the API takes it (a new record of `date`).
pub fn parse(k: LedgerKind, pairs: &[(String, String)]) -> Result<LedgerWrite, String> {
    let f = Posted(pairs);
    let date = f.get("date").to_string();
    let p = prefix(k);
    let at = hhmm("时间", f.get(&format!("{p}_at")))?;
    let record = match k {
        LedgerKind::MorningCheck => {
            let staff = f.get("mc_staff").to_string();
            if staff.is_empty() {
                return Err("请选择晨检的人员".into());
            }
            let mut symptoms = Vec::new();
            for v in f.all("mc_symptom") {
                let s = v.parse::<Symptom>().map_err(|_| format!("没有“{}”这种症状", cut(v)))?;
                if !symptoms.contains(&s) {
                    symptoms.push(s);
                }
            }
            LedgerRecord::MorningCheck(MorningCheck {
                staff,
                temperature_dc: tenths("体温", f.get("mc_temp"))?,
                symptoms,
                sent_home: f.has("mc_sent_home"),
                checked_at_ms: 0,
                note: f.text("备注", "mc_note", 200)?,
            })
        }
        LedgerKind::FoodSample => {
            let mut batches: Vec<String> = Vec::new();
            for b in f.all("fs_batch") {
                if !b.is_empty() && !batches.iter().any(|x| x == b) {
                    batches.push(b.to_string());
                }
            }
            LedgerRecord::FoodSample(FoodSample {
                canteen: f.required("食堂", "fs_canteen", 64)?,
                meal: f.choice::<Meal>("餐次", "fs_meal")?,
                dish: f.required("菜品名称", "fs_dish", 60)?,
                grams: f.number("留样重量", "fs_grams", &["克", "g", "G"])?,
                sampled_at_ms: 0,
                refrigerated: f.has("fs_cold"),
                disposed_at_ms: None,
                batches,
                sampled_by: f.required("留样人", "fs_by", 40)?,
            })
        }
        LedgerKind::Purchase => {
            let supplier = f.get("pu_supplier").to_string();
            if supplier.is_empty() {
                return Err("请选择供应商".into());
            }
            LedgerRecord::Purchase(Purchase {
                supplier,
                item: f.required("品名", "pu_item", 60)?,
                batch: f.required("批次号", "pu_batch", 60)?,
                quantity_milli: thousandths("数量", f.get("pu_qty"))?,
                unit: f.required("单位", "pu_unit", 10)?,
                received_at_ms: 0,
                inspection_cert: f.text("检验合格证明编号", "pu_cert", 120)?,
                invoice: f.text("票据编号", "pu_invoice", 120)?,
            })
        }
        LedgerKind::AccompaniedMeal => LedgerRecord::AccompaniedMeal(AccompaniedMeal {
            canteen: f.required("食堂", "am_canteen", 64)?,
            meal: f.choice::<Meal>("餐次", "am_meal")?,
            companion: f.choice::<Companion>("陪餐类别", "am_companion")?,
            name: f.required("陪餐人", "am_name", 60)?,
            rating: if f.get("am_rating").is_empty() { 0 } else { f.number("评价", "am_rating", &["分"])? },
            remarks: f.text("陪餐意见", "am_remarks", 200)?,
        }),
        LedgerKind::HazardCheck => LedgerRecord::HazardCheck(HazardCheck {
            level: f.choice::<HazardLevel>("类别", "hz_level")?,
            items_checked: f.number("检查项数", "hz_items", &["项"])?,
            problems_found: if f.get("hz_found").is_empty() {
                0
            } else {
                f.number("发现问题项数", "hz_found", &["项"])?
            },
            problems: f.text("发现的问题", "hz_problems", 300)?,
            measures: f.text("整改措施", "hz_measures", 300)?,
            checked_by: f.required("检查人", "hz_by", 40)?,
        }),
        LedgerKind::Disinfection => LedgerRecord::Disinfection(Disinfection {
            canteen: f.required("食堂", "ds_canteen", 64)?,
            target: f.required("消毒对象", "ds_target", 40)?,
            method: f.choice::<DisinfectMethod>("消毒方式", "ds_method")?,
            minutes: f.number("时长", "ds_minutes", &["分钟", "分", "min"])?,
            done_at_ms: 0,
            done_by: f.required("消毒人", "ds_by", 40)?,
        }),
        LedgerKind::PesticideTest => LedgerRecord::PesticideTest(PesticideTest {
            item: f.required("检测品名", "pt_item", 60)?,
            purchase: f.get("pt_purchase").to_string(),
            inhibition_pct: f.number("抑制率", "pt_pct", &["%"])?,
            handling: f.text("阳性处理措施", "pt_handling", 200)?,
            tested_by: f.required("检测人", "pt_by", 40)?,
        }),
    };
    Ok(LedgerWrite {
        kind: k,
        date: (!date.is_empty()).then_some(date),
        id: None,
        record: Some(record),
        void_reason: None,
        at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(kv: &[(&str, &str)]) -> Vec<(String, String)> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn numbers_as_people_type_them() {
        assert_eq!(tenths("体温", "36.5"), Ok(365));
        assert_eq!(tenths("体温", "３６．５℃"), Ok(365));
        assert_eq!(tenths("体温", "37"), Ok(370));
        assert_eq!(tenths("体温", "48.0"), Ok(480));
        assert!(tenths("体温", "36.55").unwrap_err().contains("一位小数"));
        assert!(tenths("体温", "abc").unwrap_err().contains("如 36.5"));
        assert!(tenths("体温", "").unwrap_err().contains("请填写"));
        assert_eq!(thousandths("数量", "12.5"), Ok(12_500));
        assert_eq!(thousandths("数量", "3"), Ok(3_000));
        assert_eq!(thousandths("数量", "0.125"), Ok(125));
        assert!(thousandths("数量", "1.2345").is_err());
        assert_eq!(hhmm("时间", "7:05"), Ok(Some("07:05".into())));
        assert_eq!(hhmm("时间", "07：05"), Ok(Some("07:05".into())));
        assert_eq!(hhmm("时间", ""), Ok(None));
        assert!(hhmm("时间", "25:00").is_err());
    }

    #[test]
    fn a_form_becomes_the_api_s_write() {
        let w = parse(
            LedgerKind::MorningCheck,
            &pairs(&[
                ("date", "2026-12-01"),
                ("mc_staff", "st1"),
                ("mc_temp", "37.6"),
                ("mc_symptom", "cough"),
                ("mc_symptom", "cough"),
                ("mc_sent_home", "1"),
                ("mc_at", "06:40"),
            ]),
        )
        .unwrap();
        assert_eq!(w.date.as_deref(), Some("2026-12-01"));
        assert_eq!(w.at.as_deref(), Some("06:40"));
        let Some(LedgerRecord::MorningCheck(m)) = w.record else { panic!() };
        assert_eq!((m.temperature_dc, m.symptoms, m.sent_home), (376, vec![Symptom::Cough], true));
        let w = parse(
            LedgerKind::FoodSample,
            &pairs(&[
                ("fs_canteen", "main"),
                ("fs_meal", "lunch"),
                ("fs_dish", "番茄炒蛋"),
                ("fs_grams", "150克"),
                ("fs_by", "张三"),
                ("fs_batch", "pu-20261201-1"),
            ]),
        )
        .unwrap();
        let Some(LedgerRecord::FoodSample(f)) = w.record else { panic!() };
        assert_eq!((f.grams, f.refrigerated, f.batches.len()), (150, false, 1));
        let e = parse(LedgerKind::FoodSample, &pairs(&[("fs_canteen", "main"), ("fs_meal", "brunch")])).unwrap_err();
        assert!(e.contains("餐次"), "{e}");
        let e = parse(LedgerKind::Purchase, &pairs(&[])).unwrap_err();
        assert_eq!(e, "请选择供应商");
    }
}
