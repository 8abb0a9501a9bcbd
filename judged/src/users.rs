//! The unprivileged user submissions run as. judged creates no user: it takes the one it is
//! given, else DOMjudge's `domjudge-run` when it exists, else `nobody`, and says which.
//!
//! Read from `passwd` under a root given as a parameter, so tests use fixture files.

use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

pub const PREFERRED: &str = "domjudge-run";
pub const FALLBACK: &str = "nobody";

/// Find `requested` (a name), or the default, in `etc/passwd` below `root`. Returns the user
/// and, when the default was taken, a line saying so.
pub fn resolve(requested: Option<&str>, root: &Path) -> anyhow::Result<(RunUser, Option<String>)> {
    let passwd_path = root.join("etc/passwd");
    let passwd = std::fs::read_to_string(&passwd_path)
        .map_err(|e| anyhow::anyhow!("cannot read `{}': {e}", passwd_path.display()))?;
    let users = parse_passwd(&passwd);
    let find = |name: &str| users.iter().find(|user| user.name == name).cloned();
    if let Some(name) = requested {
        let user = find(name).ok_or_else(|| {
            anyhow::anyhow!(
                "run user `{name}' does not exist in `{}': create it (useradd --system {name}) or pass another --user",
                passwd_path.display()
            )
        })?;
        anyhow::ensure!(
            user.uid != 0,
            "run user `{name}' is root: pick an unprivileged user"
        );
        return Ok((user, None));
    }
    if let Some(user) = find(PREFERRED) {
        return Ok((user, None));
    }
    let user = find(FALLBACK).ok_or_else(|| {
        anyhow::anyhow!(
            "neither `{PREFERRED}' nor `{FALLBACK}' exists in `{}': pass --user",
            passwd_path.display()
        )
    })?;
    let note = format!(
        "note: running submissions as `{FALLBACK}' because there is no `{PREFERRED}' user (pass --user to choose)"
    );
    Ok((user, Some(note)))
}

fn parse_passwd(text: &str) -> Vec<RunUser> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let _password = fields.next()?;
            let uid = fields.next()?.parse().ok()?;
            let gid = fields.next()?.parse().ok()?;
            Some(RunUser {
                name: name.to_owned(),
                uid,
                gid,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_with(passwd: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/passwd"), passwd).unwrap();
        root
    }

    const BASE: &str = "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";

    #[test]
    fn falls_back_to_nobody_and_says_so() {
        let root = root_with(BASE);
        let (user, note) = resolve(None, root.path()).unwrap();
        assert_eq!(user.uid, 65534);
        assert!(note.unwrap().contains("domjudge-run"));
    }

    #[test]
    fn prefers_domjudge_run() {
        let root = root_with(&format!("{BASE}domjudge-run:x:999:998::/:/bin/false\n"));
        let (user, note) = resolve(None, root.path()).unwrap();
        assert_eq!(
            (user.name.as_str(), user.uid, user.gid),
            ("domjudge-run", 999, 998)
        );
        assert!(note.is_none());
    }

    #[test]
    fn requested_user_must_exist_and_not_be_root() {
        let root = root_with(BASE);
        assert!(resolve(Some("ghost"), root.path())
            .unwrap_err()
            .to_string()
            .contains("ghost"));
        assert!(resolve(Some("root"), root.path()).is_err());
    }
}
