//! Small items shared across the crate, importing nothing of it: the built-in instances' "now",
//! the commit spacing, merge request counts per state and the splitmix64 mixer.

/// "Now" of the built-in instances: 2026-11-20T10:15:00Z.
pub(crate) const DEMO_NOW: i64 = 1_795_169_700;
/// Seconds between two consecutive commits of a project.
pub(crate) const COMMIT_SPACING: i64 = 7 * 3_600;

/// One step of splitmix64: a tiny deterministic mixer used for every "varied" number.
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Number of merge requests of a project in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeRequestCounts {
    /// `state=opened`.
    pub opened: u64,
    /// `state=merged`.
    pub merged: u64,
    /// `state=closed`.
    pub closed: u64,
    /// `state=locked`.
    pub locked: u64,
}

impl MergeRequestCounts {
    /// All merge requests (`state=all`).
    pub fn total(&self) -> u64 {
        self.opened + self.merged + self.closed + self.locked
    }
}
