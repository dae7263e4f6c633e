//! 通报: weekly and monthly bulletins of a province (ranking its cities and counties) or a city
//! (ranking its counties).
//!
//! - **Generate**: the figures of every ranked unit over the period, from this node's own store
//!   only — spot checks, morning checks and warnings from the daily rollup counters, cases from
//!   the folded case heads, cameras from the health table (online now: the table keeps no
//!   history). The pure ranking is [`protocol::bulletin`].
//! - **Draft**: kept in this node's local keyspace ([`Space::Draws`], key `bulletin/…`), never
//!   replicated; a 管理员 reviews it and may edit its summary.
//! - **Publish**: a [`Body::Directive`] scoped to this unit, so every node below holds it. Its text
//!   is the readable summary, then [`DATA_MARK`] and the bulletin's figures as compact JSON (every
//!   reader ranks them again, to the same table).

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use protocol::bulletin::{Example, MEASURES, Period, PeriodKind, RankedRow, Ratio, UnitFigures, rank};
use protocol::case::CaseStatus;
use protocol::health::derive_all;
use protocol::people::Action;
use protocol::{Body, Directive};
use serde::{Deserialize, Serialize};
use topology::{NodeId, Tier};

use crate::api::AdminState;
use crate::api::alerts::ListParams;
use crate::api::audit::put_local;
use crate::api::directives::{DirectiveView, directive_views};
use crate::api::kit::{ApiFail, ApiResult, api_err, append, bad, internal, name_of, read_storage};
use crate::api::principal::Principal;
use crate::runtime::store::LocalSpace;
use crate::runtime::store::rollup::{self, Metric};
use crate::storage::{Space, StorageError};

/// Where a published bulletin's data starts in its directive's text.
pub const DATA_MARK: &str = "\n〔通报数据〕";
/// Longest summary a reviewer may write (characters).
pub const SUMMARY_CHARS_MAX: usize = 2000;
/// Bad-example cases named in a bulletin.
const BAD_CASES_MAX: usize = 10;

fn draft_key(id: &str) -> Vec<u8> {
    format!("bulletin/{id}").into_bytes()
}

/// A case named as a bad example: its number, title and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseExample {
    pub number: String,
    pub title: String,
    pub school: NodeId,
    pub school_name: String,
    pub status: String,
    pub why: String,
}

/// One table: the units of one tier, with their figures (ranked when shown).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitTable {
    pub title: String,
    pub units: Vec<UnitFigures>,
}

/// A bulletin's content, as drafted and as published.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulletinDoc {
    pub issuer: NodeId,
    pub issuer_name: String,
    pub period: Period,
    pub generated_at_ms: u64,
    pub tables: Vec<UnitTable>,
    pub bad_cases: Vec<CaseExample>,
    pub summary: String,
}

impl BulletinDoc {
    /// `河北省2026年11月23日至11月29日学校食堂食品安全周通报`.
    pub fn title(&self) -> String {
        format!("{}{}学校食堂食品安全{}", self.issuer_name, self.period.label(), self.period.kind.zh())
    }
}

/// A draft kept at the issuing node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draft {
    pub id: String,
    pub doc: BulletinDoc,
    /// Set once published: the directive's event id.
    pub published: Option<String>,
}

/// A ranked table with its examples.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankedTable {
    pub title: String,
    pub rows: Vec<RankedRow>,
    pub good: Vec<Example>,
    pub bad: Vec<Example>,
}

/// A bulletin as shown: its title and content, ranked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulletinView {
    /// The draft's id, or the published directive's event id.
    pub id: String,
    pub title: String,
    /// 草稿 or 已发布.
    pub published: bool,
    pub published_at_ms: Option<u64>,
    /// Who published it (`None`: the node's operator, or not yet).
    pub person: Option<protocol::people::Person>,
    /// The draft's published directive (drafts only).
    pub directive: Option<String>,
    pub doc: BulletinDoc,
    pub tables: Vec<RankedTable>,
}

impl BulletinView {
    fn of(id: String, published: bool, doc: BulletinDoc) -> BulletinView {
        let tables = doc
            .tables
            .iter()
            .map(|t| {
                let rows = rank(&t.units);
                RankedTable {
                    title: t.title.clone(),
                    good: protocol::bulletin::good_examples(&rows),
                    bad: protocol::bulletin::bad_examples(&rows),
                    rows,
                }
            })
            .collect();
        BulletinView {
            id,
            title: doc.title(),
            published,
            published_at_ms: None,
            person: None,
            directive: None,
            doc,
            tables,
        }
    }

    fn of_draft(d: Draft) -> BulletinView {
        let mut v = BulletinView::of(d.id, false, d.doc);
        v.directive = d.published;
        v
    }

    /// The bulletin a directive carries, if it carries one.
    pub fn of_directive(d: &DirectiveView) -> Option<BulletinView> {
        let (_, data) = d.text.split_once(DATA_MARK)?;
        let doc = decode_doc(data)?;
        let mut v = BulletinView::of(d.id.clone(), true, doc);
        v.published_at_ms = Some(d.sent_at_ms);
        v.person = d.person.clone();
        Some(v)
    }
}

/// A directive's text without its bulletin data (what the 通知 page shows).
pub fn readable_text(text: &str) -> &str {
    text.split_once(DATA_MARK).map_or(text, |(t, _)| t)
}

/// The compact form of a table's units: `(unit, name, [spot, cameras, on time, ledger, warnings]
/// as part/whole pairs)`.
type CompactRow = (NodeId, String, [u64; 10]);

#[derive(Serialize, Deserialize)]
struct CompactDoc {
    issuer: NodeId,
    issuer_name: String,
    period: Period,
    generated_at_ms: u64,
    tables: Vec<(String, Vec<CompactRow>)>,
    bad_cases: Vec<CaseExample>,
    summary: String,
}

fn encode_doc(doc: &BulletinDoc) -> Result<String, serde_json::Error> {
    let row = |f: &UnitFigures| -> CompactRow {
        let m = f.measures();
        let mut n = [0u64; 10];
        for (i, r) in m.iter().enumerate() {
            n[2 * i] = r.part;
            n[2 * i + 1] = r.whole;
        }
        (f.unit, f.name.clone(), n)
    };
    serde_json::to_string(&CompactDoc {
        issuer: doc.issuer,
        issuer_name: doc.issuer_name.clone(),
        period: doc.period,
        generated_at_ms: doc.generated_at_ms,
        tables: doc.tables.iter().map(|t| (t.title.clone(), t.units.iter().map(row).collect())).collect(),
        bad_cases: doc.bad_cases.clone(),
        summary: doc.summary.clone(),
    })
}

fn decode_doc(s: &str) -> Option<BulletinDoc> {
    let c: CompactDoc = serde_json::from_str(s.trim()).ok()?;
    let unit = |(unit, name, n): (NodeId, String, [u64; 10])| {
        let mut f = UnitFigures::new(unit, name);
        f.spot = Ratio::new(n[0], n[1]);
        f.cameras = Ratio::new(n[2], n[3]);
        f.on_time = Ratio::new(n[4], n[5]);
        f.ledger = Ratio::new(n[6], n[7]);
        f.warnings = Ratio::new(n[8], n[9]);
        f
    };
    Some(BulletinDoc {
        issuer: c.issuer,
        issuer_name: c.issuer_name,
        period: c.period,
        generated_at_ms: c.generated_at_ms,
        tables: c
            .tables
            .into_iter()
            .map(|(title, rows)| UnitTable { title, units: rows.into_iter().map(unit).collect() })
            .collect(),
        bad_cases: c.bad_cases,
        summary: c.summary,
    })
}

/// The readable text of a published bulletin: the summary, then each table's first and last.
fn readable(v: &BulletinView) -> String {
    let mut out = v.doc.summary.trim().to_string();
    for t in &v.tables {
        out.push_str(&format!("\n\n【{}】", t.title));
        for r in t.rows.iter().take(3) {
            if let (Some(rank), Some(score)) = (r.rank, r.score) {
                out.push_str(&format!("\n第{rank}名 {} 综合 {}", r.figures.name, protocol::bulletin::pct(score)));
            }
        }
    }
    out.push_str("\n\n（完整排名表见“通报”页面）");
    out
}

/// What to generate.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateBulletin {
    /// `weekly` or `monthly`.
    pub kind: String,
    /// A day of the week (`2026-11-23`) or a month (`2026-11`); empty: the last whole period.
    #[serde(default)]
    pub period: Option<String>,
}

/// A reviewer's edit of a draft.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditBulletin {
    pub summary: String,
}

fn bulletin_unit(s: &AdminState) -> Result<(), ApiFail> {
    match s.me.tier() {
        Tier::Province | Tier::City => Ok(()),
        _ => Err(bad("通报由省级和市级单位生成：本节点不是省级或市级节点")),
    }
}

/// The period asked for.
pub fn period_of(kind: &str, period: Option<&str>, today: u32) -> Result<Period, ApiFail> {
    let kind: PeriodKind = kind.parse().map_err(bad)?;
    let p = period.map(str::trim).filter(|p| !p.is_empty());
    let period = match (kind, p) {
        (k, None) => Period::last_complete(k, today),
        (PeriodKind::Weekly, Some(d)) => {
            Period::week_of(protocol::calendar::parse_day(d).map_err(|e| bad(format!("周通报的日期：{e}")))? as u32)
        }
        (PeriodKind::Monthly, Some(m)) => {
            let first = protocol::calendar::parse_month(m)
                .or_else(|_| protocol::calendar::parse_day(m))
                .map_err(|_| bad(format!("“{m}”不是月份：请写成 2026-11")))?;
            Period::month_of(first as u32)
        }
    };
    if period.first_day > today {
        return Err(bad(format!("{} 尚未开始，不能生成通报", period.label())));
    }
    Ok(period)
}

/// Generates a draft (a 管理员 of a province or city) and keeps it here.
pub async fn generate_as(s: &AdminState, who: &Principal, req: GenerateBulletin) -> Result<BulletinView, ApiFail> {
    who.require(s, Action::PublishBulletin).await?;
    bulletin_unit(s)?;
    let now = s.clock.wall_ms();
    let period = period_of(&req.kind, req.period.as_deref(), protocol::ledger::china_day(now))?;
    let doc = gather(s, period, now).await?;
    let draft = Draft { id: format!("d{now}"), doc, published: None };
    save(s, &draft).await?;
    Ok(BulletinView::of_draft(draft))
}

async fn save(s: &AdminState, d: &Draft) -> Result<(), ApiFail> {
    put_local(s, LocalSpace::Draws, draft_key(&d.id), serde_json::to_vec(d).map_err(internal)?).await
}

async fn load(s: &AdminState, id: &str) -> Result<Draft, ApiFail> {
    let key = draft_key(id);
    let raw = read_storage(s, move |st| st.get(Space::Draws, &key)).await?;
    let raw = raw.ok_or_else(|| api_err(axum::http::StatusCode::NOT_FOUND, format!("没有通报草稿 {id}")))?;
    serde_json::from_slice(&raw).map_err(|e| internal(format!("通报草稿 {id} 记录损坏：{e}")))
}

/// Every draft kept here, newest first.
pub async fn drafts_as(s: &AdminState, who: &Principal) -> Result<Vec<BulletinView>, ApiFail> {
    who.require(s, Action::PublishBulletin).await?;
    let raw = read_storage(s, |st| {
        st.scan_prefix(Space::Draws, b"bulletin/").map(|i| i.map(|(_, v)| v)).collect::<Result<Vec<_>, _>>()
    })
    .await?;
    let mut out: Vec<Draft> = raw.iter().filter_map(|v| serde_json::from_slice(v).ok()).collect();
    out.sort_by_key(|b| std::cmp::Reverse(b.doc.generated_at_ms));
    Ok(out.into_iter().map(BulletinView::of_draft).collect())
}

pub async fn draft_as(s: &AdminState, who: &Principal, id: &str) -> Result<BulletinView, ApiFail> {
    who.require(s, Action::PublishBulletin).await?;
    Ok(BulletinView::of_draft(load(s, id).await?))
}

fn check_summary(t: &str) -> Result<String, ApiFail> {
    let t = t.trim();
    if t.chars().count() > SUMMARY_CHARS_MAX {
        return Err(bad(format!("通报正文最多 {SUMMARY_CHARS_MAX} 字")));
    }
    if t.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
        return Err(bad("通报正文含有控制字符"));
    }
    if t.contains(DATA_MARK.trim()) {
        return Err(bad("通报正文不能含有“〔通报数据〕”字样"));
    }
    Ok(t.replace('\r', ""))
}

/// A 管理员 edits a draft's summary (not once published).
pub async fn edit_as(s: &AdminState, who: &Principal, id: &str, req: EditBulletin) -> Result<BulletinView, ApiFail> {
    who.require(s, Action::PublishBulletin).await?;
    let mut d = load(s, id).await?;
    if d.published.is_some() {
        return Err(bad("该通报已发布，不能再修改"));
    }
    d.doc.summary = check_summary(&req.summary)?;
    save(s, &d).await?;
    Ok(BulletinView::of_draft(d))
}

/// A 管理员 publishes a draft down the tree: a directive scoped to this unit.
pub async fn publish_as(s: &AdminState, who: &Principal, id: &str) -> Result<BulletinView, ApiFail> {
    who.require(s, Action::PublishBulletin).await?;
    bulletin_unit(s)?;
    let mut d = load(s, id).await?;
    if let Some(done) = &d.published {
        return Err(bad(format!("该通报已发布（{done}）")));
    }
    if d.doc.summary.trim().is_empty() {
        return Err(bad("请先填写通报正文（审核意见与要求）再发布"));
    }
    let view = BulletinView::of(d.id.clone(), false, d.doc.clone());
    let text = format!("{}{DATA_MARK}{}", readable(&view), encode_doc(&d.doc).map_err(internal)?);
    if text.len() > protocol::holds::DIRECTIVE_TEXT_BYTES_MAX {
        return Err(bad(format!(
            "通报内容过大（{} 字节，最多 {} 字节）：请缩短正文",
            text.len(),
            protocol::holds::DIRECTIVE_TEXT_BYTES_MAX
        )));
    }
    let body = Body::Directive(Directive { title: d.doc.title(), text });
    let stored = append(s, who.person(), vec![(s.me, body)]).await?;
    let ev = stored.first().ok_or_else(|| internal("nothing stored"))?;
    d.published = Some(ev.event.id().to_string());
    save(s, &d).await?;
    let dv = DirectiveView::from_stored(ev).ok_or_else(|| internal("not a directive"))?;
    BulletinView::of_directive(&dv).ok_or_else(|| internal("published bulletin unreadable"))
}

/// The published bulletins this node holds (its own and those from above), newest first.
pub async fn published_as(s: &AdminState, who: &Principal) -> Result<Vec<BulletinView>, ApiFail> {
    who.require(s, Action::ViewSubtree).await?;
    let p = ListParams { limit: Some("1000".into()), ..ListParams::default() };
    Ok(directive_views(s, p).await?.iter().filter_map(BulletinView::of_directive).collect())
}

/// One published bulletin, by its directive's event id.
pub async fn one_as(s: &AdminState, who: &Principal, id: &str) -> Result<BulletinView, ApiFail> {
    published_as(s, who)
        .await?
        .into_iter()
        .find(|b| b.id == id)
        .ok_or_else(|| api_err(axum::http::StatusCode::NOT_FOUND, format!("本节点没有通报 {id}")))
}

/// The units ranked, by table: a province's cities and counties, a city's counties.
fn ranked_units(s: &AdminState, registered: &[NodeId]) -> Vec<(String, Vec<NodeId>)> {
    let mut all: BTreeSet<NodeId> = s.topology.subtree(s.me).map(|e| e.id).collect();
    all.extend(registered.iter().copied().filter(|n| n.in_subtree_of(s.me)));
    let of = |t: Tier| all.iter().copied().filter(|n| n.tier() == t && *n != s.me).collect::<Vec<_>>();
    match s.me.tier() {
        Tier::Province => vec![("各市排名".into(), of(Tier::City)), ("各县（区）排名".into(), of(Tier::County))],
        _ => vec![("各县（区）排名".into(), of(Tier::County))],
    }
}

type Gathered = (BTreeMap<NodeId, [u64; 8]>, BTreeMap<NodeId, u64>, Vec<protocol::case::CaseState>);

/// The figures of the period, from this node's store.
async fn gather(s: &AdminState, period: Period, now: u64) -> Result<BulletinDoc, ApiFail> {
    let me = s.me;
    let today = protocol::ledger::china_day(now);
    let last = period.last_day.min(today);
    let first = period.first_day;
    let registered = read_storage(s, rollup::registered_units).await?;
    let tables = ranked_units(s, &registered);
    let units: Vec<NodeId> = tables.iter().flat_map(|(_, u)| u.iter().copied()).collect();
    let mut schools: BTreeSet<NodeId> =
        s.topology.subtree(me).map(|e| e.id).filter(|n| n.tier() == Tier::School).collect();
    schools.extend(registered.iter().copied().filter(|n| n.tier() == Tier::School && n.in_subtree_of(me)));
    let calendar = protocol::calendar::WorkCalendar::builtin();
    let working: Vec<u32> = (first..=last).filter(|d| calendar.is_working_date(u64::from(*d))).collect();
    let start_ms = protocol::calendar::day_start_ms(u64::from(first));
    let end_ms = protocol::calendar::day_start_ms(u64::from(last) + 1).min(now);

    let (units2, schools2, working2) = (units, schools.clone(), working.clone());
    let (counts, recorded, cases): Gathered = read_storage(s, move |st| {
        // Per unit: spot checked, passed, warnings raised, resolved (from the unit's counters).
        let mut counts: BTreeMap<NodeId, [u64; 8]> = BTreeMap::new();
        for u in &units2 {
            let days = rollup::daily(st, *u, first, last)?;
            let c = counts.entry(*u).or_default();
            for m in days.values() {
                let get = |k: Metric| m.get(&k).copied().unwrap_or(0);
                c[0] += get(Metric::SpotChecked);
                c[1] += get(Metric::SpotPassed);
                c[2] += get(Metric::WarningRaised);
                c[3] += get(Metric::WarningResolved);
            }
        }
        // Per school: working days with a morning check recorded.
        let mut recorded: BTreeMap<NodeId, u64> = BTreeMap::new();
        for school in &schools2 {
            let days = rollup::daily(st, *school, first, last)?;
            let n = working2
                .iter()
                .filter(|d| days.get(d).and_then(|m| m.get(&Metric::MorningCheck)).is_some_and(|n| *n > 0))
                .count() as u64;
            recorded.insert(*school, n);
        }
        let cases: Vec<_> = crate::runtime::store::case_summaries::case_heads(st, false)?.into_values().collect();
        Ok::<_, StorageError>((counts, recorded, cases))
    })
    .await?;

    // Cameras online now, per unit.
    let health = crate::api::health::shared(s).await?;
    let cameras = {
        let table = health.lock();
        let all = crate::api::health::roster(&s.topology, &table, &registered, me);
        let derived = derive_all(me, &all, &table, now, &health.timing);
        crate::api::health::camera_sums(&derived, &table, me)
    };

    // Cases due in the period (deadline inside it and passed), and those rectified by then.
    let mut due: BTreeMap<NodeId, (u64, u64)> = BTreeMap::new();
    let mut bad_cases: Vec<(u8, CaseExample)> = Vec::new();
    for c in &cases {
        if c.status == CaseStatus::Cancelled || !c.school.in_subtree_of(me) {
            continue;
        }
        if let Some(deadline) = c.deadline_ms
            && deadline >= start_ms
            && deadline < end_ms
        {
            let on_time = c.overdue_marks == 0 && c.submitted_at_ms.is_some_and(|t| t <= deadline);
            for u in c.school.path_up().take_while(|n| n.in_subtree_of(me)) {
                let e = due.entry(u).or_default();
                e.0 += u64::from(on_time);
                e.1 += 1;
            }
        }
        let escalated = c.supervisor.tier() != Tier::County && !c.status.is_terminal();
        let in_period = c.opened_at_ms < end_ms && c.closed_at_ms.is_none_or(|t| t >= start_ms);
        if in_period && (c.overdue || escalated || (c.overdue_marks > 0 && !c.status.is_terminal())) {
            let mut why = Vec::new();
            if c.overdue {
                why.push("逾期未整改".to_string());
            } else if c.overdue_marks > 0 {
                why.push(format!("曾逾期 {} 次", c.overdue_marks));
            }
            if escalated {
                why.push(format!("已督办至{}", if c.supervisor.tier() == Tier::Province { "省级" } else { "市级" }));
            }
            if c.notice_refused {
                why.push("学校拒收整改通知".into());
            }
            let weight = u8::from(escalated) * 2 + u8::from(c.overdue);
            bad_cases.push((
                weight,
                CaseExample {
                    number: c.ledger_no(),
                    title: c.title.clone(),
                    school: c.school,
                    school_name: name_of(s, c.school),
                    status: c.status.zh().to_string(),
                    why: why.join("，"),
                },
            ));
        }
    }
    bad_cases.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.number.cmp(&b.1.number)));
    let bad_cases: Vec<CaseExample> = bad_cases.into_iter().take(BAD_CASES_MAX).map(|(_, c)| c).collect();

    let figures = |u: NodeId| -> UnitFigures {
        let name = name_of(s, u);
        let mut f = UnitFigures::new(u, if name.is_empty() { u.to_string() } else { name });
        let c = counts.get(&u).copied().unwrap_or_default();
        f.spot = Ratio::new(c[1], c[0]);
        f.warnings = Ratio::new(c[3], c[2]);
        let (cams, online) = cameras.get(&u).copied().unwrap_or_default();
        f.cameras = Ratio::new(u64::from(online), u64::from(cams));
        let (ok, n) = due.get(&u).copied().unwrap_or_default();
        f.on_time = Ratio::new(ok, n);
        let mine: Vec<&NodeId> = schools.iter().filter(|sc| sc.in_subtree_of(u)).collect();
        let rec: u64 = mine.iter().map(|sc| recorded.get(sc).copied().unwrap_or(0)).sum();
        f.ledger = Ratio::new(rec, mine.len() as u64 * working.len() as u64);
        f
    };
    let tables: Vec<UnitTable> = tables
        .into_iter()
        .map(|(title, units)| UnitTable { title, units: units.into_iter().map(figures).collect() })
        .collect();
    let issuer_name = {
        let n = name_of(s, me);
        if n.is_empty() { me.to_string() } else { n }
    };
    let mut doc = BulletinDoc {
        issuer: me,
        issuer_name,
        period,
        generated_at_ms: now,
        tables,
        bad_cases,
        summary: String::new(),
    };
    doc.summary = default_summary(&doc);
    Ok(doc)
}

/// The summary a draft starts with (the reviewer edits it).
fn default_summary(doc: &BulletinDoc) -> String {
    let v = BulletinView::of(String::new(), false, doc.clone());
    let mut out = format!(
        "现将{}全辖学校食堂食品安全“明厨亮灶”监管情况通报如下。本期按{}五项指标综合排名（各项等权平均）。",
        doc.period.label(),
        MEASURES.join("、")
    );
    for t in &v.tables {
        let good: Vec<&str> = t.good.iter().map(|e| e.name.as_str()).collect();
        let bad: Vec<&str> = t.bad.iter().map(|e| e.name.as_str()).collect();
        if !good.is_empty() {
            out.push_str(&format!("\n{}：{}表现较好，予以表扬。", t.title, good.join("、")));
        }
        if !bad.is_empty() {
            out.push_str(&format!("\n{}：{}排名靠后，请认真分析原因，限期整改提升。", t.title, bad.join("、")));
        }
    }
    if !doc.bad_cases.is_empty() {
        out.push_str(&format!(
            "\n本期有 {} 件整改问题逾期或被督办，相关单位须立即整改到位并书面报告。",
            doc.bad_cases.len()
        ));
    }
    out
}

async fn generate_route(
    State(s): State<AdminState>,
    who: Principal,
    Json(req): Json<GenerateBulletin>,
) -> ApiResult<BulletinView> {
    Ok(Json(generate_as(&s, &who, req).await?))
}

async fn drafts_route(State(s): State<AdminState>, who: Principal) -> ApiResult<Vec<BulletinView>> {
    Ok(Json(drafts_as(&s, &who).await?))
}

async fn draft_route(State(s): State<AdminState>, who: Principal, Path(id): Path<String>) -> ApiResult<BulletinView> {
    Ok(Json(draft_as(&s, &who, &id).await?))
}

async fn edit_route(
    State(s): State<AdminState>,
    who: Principal,
    Path(id): Path<String>,
    Json(req): Json<EditBulletin>,
) -> ApiResult<BulletinView> {
    Ok(Json(edit_as(&s, &who, &id, req).await?))
}

async fn publish_route(State(s): State<AdminState>, who: Principal, Path(id): Path<String>) -> ApiResult<BulletinView> {
    Ok(Json(publish_as(&s, &who, &id).await?))
}

async fn list_route(State(s): State<AdminState>, who: Principal) -> ApiResult<Vec<BulletinView>> {
    Ok(Json(published_as(&s, &who).await?))
}

async fn one_route(State(s): State<AdminState>, who: Principal, Path(id): Path<String>) -> ApiResult<BulletinView> {
    Ok(Json(one_as(&s, &who, &id).await?))
}

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/bulletins", get(list_route))
        .route("/api/bulletins/drafts", get(drafts_route).post(generate_route))
        .route("/api/bulletins/drafts/{id}", get(draft_route).post(edit_route))
        .route("/api/bulletins/drafts/{id}/publish", post(publish_route))
        .route("/api/bulletins/{id}", get(one_route))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bulletin_survives_its_directive_text() {
        let mut f = UnitFigures::new("130102".parse().unwrap(), "长安区");
        f.spot = Ratio::new(3, 4);
        f.ledger = Ratio::new(9, 10);
        let doc = BulletinDoc {
            issuer: "13".parse().unwrap(),
            issuer_name: "河北省".into(),
            period: Period::week_of(20_000),
            generated_at_ms: 1,
            tables: vec![UnitTable { title: "各县（区）排名".into(), units: vec![f] }],
            bad_cases: Vec::new(),
            summary: "通报如下。".into(),
        };
        let text = format!("正文{DATA_MARK}{}", encode_doc(&doc).unwrap());
        assert_eq!(readable_text(&text), "正文");
        assert_eq!(decode_doc(text.split_once(DATA_MARK).unwrap().1), Some(doc));
        assert!(check_summary(&format!("x{}", DATA_MARK)).is_err());
    }
}
