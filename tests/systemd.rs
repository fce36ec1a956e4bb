//! The example systemd unit (`examples/gitlab-api-exporter.service`), checked with the real
//! tools: `systemd-analyze verify` (pointed at the binary under test) and `systemd-analyze
//! security`, whose exposure score must stay "OK" (below 2.0).

use std::process::Command;

#[test]
fn systemd_unit_verifies_and_is_hardened() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("systemd-analyze is missing: install Debian's systemd package (scripts/test does)");
    }
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/gitlab-api-exporter.service"
    ))
    .unwrap();
    assert!(
        unit.contains("ExecReload=/bin/kill -HUP $MAINPID"),
        "reload re-reads the token"
    );
    assert!(
        unit.contains("LoadCredential="),
        "the token comes as a credential"
    );
    let dir = std::env::temp_dir().join(format!("gae-systemd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gitlab-api-exporter.service");
    std::fs::write(
        &path,
        unit.replace(
            "/usr/local/bin/gitlab-api-exporter",
            env!("CARGO_BIN_EXE_gitlab-api-exporter"),
        ),
    )
    .unwrap();

    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&verify.stderr).into_owned();
    assert!(verify.status.success(), "{said}");
    assert!(
        !said.contains("gitlab-api-exporter.service:"),
        "warnings: {said}"
    );

    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&path)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&security.stdout).into_owned();
    let score: f64 = report
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for gitlab-api-exporter.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {report}"));
    assert!(score < 2.0, "exposure {score}: {report}");
    std::fs::remove_dir_all(&dir).unwrap();
}
