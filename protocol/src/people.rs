//! People: the roles an account can hold, the actions a person can take, and the one permission
//! table that says who may do what (role × action), with the unit's tier deciding which roles
//! exist there. Pure data and functions: the console, the admin API and the CLI ask
//! [`permits`]; nothing else decides.
//!
//! An account belongs to one unit and signs in at that unit's node. Its directory entry (id, name,
//! role — no secret) is a registry entity of that unit ([`crate::registry::EntityKind::Account`]),
//! replicated by the holds rule so every level can show who did what; the password hash never
//! leaves the node that checks it.
//!
//! Data scope follows the tree: a person sees what their node holds (本部门及以下, the unit and its
//! subtree); a parent only the parent-visible part of one school.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use topology::Tier;

/// What an account may be. Wire rule: encoded by position, so only ever append.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// 管理员: accounts and settings of a supervising unit.
    Admin,
    /// 监管员: alert verdicts, cases, directives.
    Supervisor,
    /// 巡查员: online spot checks.
    Inspector,
    /// 领导/只读: sees everything of the unit's subtree, changes nothing.
    Viewer,
    /// 校长: answers notices, submits rectifications, manages the school's accounts.
    Principal,
    /// 食品安全员: the school's alert verdicts, registry and ledgers.
    SafetyOfficer,
    /// 家长: read-only, one school, parent-visible data only.
    Parent,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Admin,
        Role::Supervisor,
        Role::Inspector,
        Role::Viewer,
        Role::Principal,
        Role::SafetyOfficer,
        Role::Parent,
    ];

    /// The name a person reads and types: `管理员`.
    pub fn zh(self) -> &'static str {
        match self {
            Role::Admin => "管理员",
            Role::Supervisor => "监管员",
            Role::Inspector => "巡查员",
            Role::Viewer => "领导",
            Role::Principal => "校长",
            Role::SafetyOfficer => "食品安全员",
            Role::Parent => "家长",
        }
    }

    /// The name in JSON and on the command line: `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Supervisor => "supervisor",
            Role::Inspector => "inspector",
            Role::Viewer => "viewer",
            Role::Principal => "principal",
            Role::SafetyOfficer => "safety-officer",
            Role::Parent => "parent",
        }
    }

    /// Whether a unit of `tier` has this role: the supervising roles at province, city and
    /// county; the school's roles (and parents) at a school.
    pub fn exists_at(self, tier: Tier) -> bool {
        match self {
            Role::Admin | Role::Supervisor | Role::Inspector | Role::Viewer => tier != Tier::School,
            Role::Principal | Role::SafetyOfficer | Role::Parent => tier == Tier::School,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.zh())
    }
}

/// Why a text is not a role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("没有“{0}”这个角色，可选：管理员、监管员、巡查员、领导（只读）、校长、食品安全员、家长")]
pub struct RoleError(pub String);

impl FromStr for Role {
    type Err = RoleError;
    /// The Chinese name (`管理员`, also `只读` for 领导) or the English one (`admin`).
    fn from_str(s: &str) -> Result<Role, RoleError> {
        let t = s.trim();
        if matches!(t, "只读" | "领导/只读") {
            return Ok(Role::Viewer);
        }
        Role::ALL.into_iter().find(|r| r.zh() == t || r.as_str() == t).ok_or_else(|| RoleError(t.to_string()))
    }
}

/// Something a person can do (or see) at their node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// See the alerts, cases, checks, directives and registry of the unit's subtree.
    ViewSubtree,
    /// See one school's parent-visible cameras and its public record.
    ViewParentPage,
    /// Create, change and disable the unit's accounts.
    ManageAccounts,
    /// Change the settings (province default, county override).
    ChangeSettings,
    /// Confirm an alert or dismiss it as 误报.
    JudgeAlert,
    /// Open a case (挂账) with its notice, and the supervisor's later steps: notice, review,
    /// close (销号), cancel, escalate (督办).
    SuperviseCase,
    /// The school's steps on a case: acknowledge the notice, submit the rectification.
    AnswerCase,
    /// Record an online spot check (网络巡查).
    RecordSpotCheck,
    /// Send a notice, directive or bulletin down the tree.
    SendDirective,
    /// Register schools (a county), canteens, cameras, staff and certificates (a school).
    EditRegistry,
    /// Fill in the school's food-safety ledgers (晨检、留样、采购、陪餐、排查、消毒、快检).
    KeepLedgers,
    /// Register, revoke and re-key the school's devices (AI boxes, video recorders) that feed its
    /// node detections and camera heartbeats.
    ManageDevices,
    /// Open the big screen (监管大屏) of a supervising unit: its subtree at a glance.
    ViewScreen,
    /// Generate a bulletin (通报) draft, review and edit it, and publish it down the tree.
    PublishBulletin,
}

impl Action {
    pub const ALL: [Action; 14] = [
        Action::ViewSubtree,
        Action::ViewParentPage,
        Action::ManageAccounts,
        Action::ChangeSettings,
        Action::JudgeAlert,
        Action::SuperviseCase,
        Action::AnswerCase,
        Action::RecordSpotCheck,
        Action::SendDirective,
        Action::EditRegistry,
        Action::KeepLedgers,
        Action::ManageDevices,
        Action::ViewScreen,
        Action::PublishBulletin,
    ];

    /// What a refusal calls it: `确认或判定告警`.
    pub fn zh(self) -> &'static str {
        match self {
            Action::ViewSubtree => "查看本单位及下级数据",
            Action::ViewParentPage => "查看家长页面",
            Action::ManageAccounts => "管理账号",
            Action::ChangeSettings => "修改设置",
            Action::JudgeAlert => "确认或判定告警",
            Action::SuperviseCase => "挂账、复核、销号、督办",
            Action::AnswerCase => "签收通知、提交整改",
            Action::RecordSpotCheck => "记录网络巡查",
            Action::SendDirective => "下发通知",
            Action::EditRegistry => "登记单位、食堂、摄像头、人员",
            Action::KeepLedgers => "填报食品安全台账",
            Action::ManageDevices => "管理设备（AI 分析盒、硬盘录像机）",
            Action::ViewScreen => "查看监管大屏",
            Action::PublishBulletin => "生成、审核和发布通报",
        }
    }
}

/// The permission table: which role may take which action (at a unit where the role exists).
/// One row per role; the order of the columns is [`Action::ALL`]'s.
const TABLE: [(Role, [bool; 14]); 7] = {
    // Columns: view, parent page, accounts, settings, judge, supervise, answer, spot, directive,
    // registry, ledgers, devices, big screen, bulletin.
    const T: bool = true;
    const F: bool = false;
    [
        (Role::Admin, [T, F, T, T, F, F, F, F, F, T, F, F, T, T]),
        (Role::Supervisor, [T, F, F, F, T, T, F, F, T, F, F, F, T, F]),
        (Role::Inspector, [T, F, F, F, F, F, F, T, F, F, F, F, T, F]),
        (Role::Viewer, [T, F, F, F, F, F, F, F, F, F, F, F, T, F]),
        (Role::Principal, [T, F, T, F, F, F, T, F, F, F, T, T, F, F]),
        (Role::SafetyOfficer, [T, F, F, F, T, F, F, F, F, T, T, T, F, F]),
        (Role::Parent, [F, T, F, F, F, F, F, F, F, F, F, F, F, F]),
    ]
};

/// Whether a person with `role` at a unit of `tier` may take `action` there. A role the tier does
/// not have may do nothing.
pub fn permits(role: Role, tier: Tier, action: Action) -> bool {
    if !role.exists_at(tier) {
        return false;
    }
    let column = Action::ALL.iter().position(|a| *a == action).unwrap_or(usize::MAX);
    TABLE.iter().find(|(r, _)| *r == role).and_then(|(_, row)| row.get(column)).copied().unwrap_or(false)
}

/// The refusal a person reads: `监管员 不能 管理账号`.
pub fn refusal(role: Role, tier: Tier, action: Action) -> String {
    if role.exists_at(tier) {
        format!("{}不能{}", role.zh(), action.zh())
    } else {
        format!("{}级单位没有{}这一角色", tier_zh(tier), role.zh())
    }
}

fn tier_zh(t: Tier) -> &'static str {
    match t {
        Tier::Province => "省",
        Tier::City => "市",
        Tier::County => "县",
        Tier::School => "学校",
    }
}

/// An account's directory entry (no secret): who a person is, wherever their steps are shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountEntry {
    /// The name shown beside their steps: `李娜`.
    pub display_name: String,
    pub role: Role,
    /// A disabled account can no longer sign in; its past steps keep its name.
    pub disabled: bool,
}

/// The person who took a step, recorded in the event beside the node that wrote it: the node
/// vouches for its people (the person is not a cryptographic identity on the wire).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Person {
    /// The account id: `li.na`.
    pub account: String,
    /// The display name when the step was taken: `李娜`.
    pub name: String,
}

impl Person {
    /// Longest account id or name a peer's event may carry (bytes).
    pub const FIELD_BYTES_MAX: usize = 128;

    /// `李娜（li.na）`.
    pub fn label(&self) -> String {
        format!("{}（{}）", self.name, self.account)
    }

    /// Whether a peer's event carries a plausible person (sizes only: the writing node vouches).
    pub fn is_well_formed(&self) -> bool {
        !self.account.is_empty()
            && self.account.len() <= Self::FIELD_BYTES_MAX
            && self.name.len() <= Self::FIELD_BYTES_MAX
            && !self.name.chars().any(char::is_control)
            && !self.account.chars().any(char::is_control)
    }
}

/// An account id (the name a person signs in with): 2–32 of `a-z 0-9 . _ -`, starting with a
/// letter or digit.
pub fn check_account_id(id: &str) -> Result<(), String> {
    let ok_len = (2..=32).contains(&id.len());
    let ok_chars = id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    let ok_first = id.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok_len && ok_chars && ok_first {
        Ok(())
    } else {
        Err(format!("账号名“{id}”不合规：2 到 32 个小写字母、数字或 . _ -，以字母或数字开头"))
    }
}

impl AccountEntry {
    /// Checks what a person could get wrong, for an account of a unit of `tier`.
    pub fn validate(&self, tier: Tier) -> Result<(), String> {
        let name = self.display_name.trim();
        if name.is_empty() || name.chars().count() > 32 || name.chars().any(char::is_control) {
            return Err("姓名不能为空，最多 32 个字，不能含控制字符".into());
        }
        if !self.role.exists_at(tier) {
            return Err(refusal(self.role, tier, Action::ViewSubtree));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole table, written out once more by hand: every (role, tier, action) is checked, so
    /// a changed cell fails here and has to be changed deliberately in both places.
    #[test]
    fn the_permission_table_exhaustively() {
        use Action::*;
        let supervising = [Tier::Province, Tier::City, Tier::County];
        let expected = |role: Role, tier: Tier, action: Action| -> bool {
            let supervising_tier = supervising.contains(&tier);
            match role {
                Role::Admin => {
                    supervising_tier
                        && matches!(
                            action,
                            ViewSubtree | ManageAccounts | ChangeSettings | EditRegistry | ViewScreen | PublishBulletin
                        )
                }
                Role::Supervisor => {
                    supervising_tier
                        && matches!(action, ViewSubtree | JudgeAlert | SuperviseCase | SendDirective | ViewScreen)
                }
                Role::Inspector => supervising_tier && matches!(action, ViewSubtree | RecordSpotCheck | ViewScreen),
                Role::Viewer => supervising_tier && matches!(action, ViewSubtree | ViewScreen),
                Role::Principal => {
                    tier == Tier::School
                        && matches!(action, ViewSubtree | ManageAccounts | AnswerCase | KeepLedgers | ManageDevices)
                }
                Role::SafetyOfficer => {
                    tier == Tier::School
                        && matches!(action, ViewSubtree | JudgeAlert | EditRegistry | KeepLedgers | ManageDevices)
                }
                Role::Parent => tier == Tier::School && action == ViewParentPage,
            }
        };
        let mut checked = 0;
        for role in Role::ALL {
            for tier in [Tier::Province, Tier::City, Tier::County, Tier::School] {
                for action in Action::ALL {
                    assert_eq!(
                        permits(role, tier, action),
                        expected(role, tier, action),
                        "{role:?} {tier:?} {action:?}"
                    );
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 7 * 4 * 14);
    }

    #[test]
    fn roles_are_typed_in_chinese_or_english() {
        for r in Role::ALL {
            assert_eq!(r.zh().parse::<Role>().unwrap(), r);
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert_eq!("只读".parse::<Role>().unwrap(), Role::Viewer);
        assert!("boss".parse::<Role>().unwrap_err().to_string().contains("管理员"));
    }

    #[test]
    fn accounts_are_checked_before_they_exist() {
        assert!(check_account_id("li.na-02").is_ok());
        for bad in ["", "a", "Li", "李娜", "-x", "a b", &"x".repeat(33)] {
            assert!(check_account_id(bad).is_err(), "{bad}");
        }
        let parent = AccountEntry { display_name: "王芳".into(), role: Role::Parent, disabled: false };
        assert!(parent.validate(Tier::School).is_ok());
        assert!(parent.validate(Tier::County).unwrap_err().contains("家长"));
        let blank = AccountEntry { display_name: " ".into(), role: Role::Admin, disabled: false };
        assert!(blank.validate(Tier::County).is_err());
    }
}
