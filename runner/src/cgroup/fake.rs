//! Tests' stand-in for the kernel: a temporary copy of a `testdata/cgroup/<layout>/` tree
//! (its `mountinfo`, the mount roots under `sys/`, and in `new-cgroup/<mount dir name>/` the
//! files the kernel puts in a new cgroup of each hierarchy), and a [`CgroupFs`] over it.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::fs::CgroupFs;
use super::Hierarchies;

/// A private copy of one fixture tree, deleted on drop.
pub(crate) struct FixtureTree {
    pub(crate) root: PathBuf,
    pub(crate) hierarchies: Hierarchies,
}

impl FixtureTree {
    pub(crate) fn copy(layout: &str) -> FixtureTree {
        static COPIES: AtomicUsize = AtomicUsize::new(0);
        let source = crate::repo_path("testdata/cgroup").join(layout);
        let root = std::env::temp_dir().join(format!(
            "judged-cgroup-{layout}-{}-{}",
            std::process::id(),
            COPIES.fetch_add(1, Ordering::Relaxed)
        ));
        copy_tree(&source, &root).unwrap();
        let mountinfo = std::fs::read_to_string(root.join("mountinfo")).unwrap();
        let hierarchies = Hierarchies::from_mountinfo(&mountinfo, &root).unwrap();
        FixtureTree { root, hierarchies }
    }

    pub(crate) fn fs(&self) -> Box<dyn CgroupFs> {
        let templates = self
            .hierarchies
            .mounts()
            .map(|mount| {
                let template = self
                    .root
                    .join("new-cgroup")
                    .join(mount.file_name().unwrap());
                (mount.to_path_buf(), template)
            })
            .collect();
        Box::new(FakeCgroupfs { templates })
    }

    /// Where `relative` (e.g. `sys/fs/cgroup/memory/judged`) is in the copy.
    pub(crate) fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    pub(crate) fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path(relative)).unwrap()
    }

    pub(crate) fn write(&self, relative: &str, text: &str) {
        std::fs::write(self.path(relative), text).unwrap()
    }
}

impl Drop for FixtureTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// mkdir fills the new directory from its hierarchy's template, as the kernel does; rmdir
/// refuses, as the kernel does, a group with child groups or processes, and otherwise removes
/// the directory with its files.
struct FakeCgroupfs {
    /// (mount point, template of a new group in it)
    templates: Vec<(PathBuf, PathBuf)>,
}

impl CgroupFs for FakeCgroupfs {
    fn make_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir(path)?;
        let (_, template) = self
            .templates
            .iter()
            .filter(|(mount, _)| path.starts_with(mount))
            .max_by_key(|(mount, _)| mount.components().count())
            .expect("a new group lies in a hierarchy");
        copy_tree(template, path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        let has_children = std::fs::read_dir(path)?
            .map(|entry| entry.and_then(|e| e.file_type()))
            .any(|kind| kind.map_or(true, |kind| kind.is_dir()));
        let has_processes = !std::fs::read_to_string(path.join("cgroup.procs"))?
            .trim()
            .is_empty();
        if has_children || has_processes {
            return Err(io::Error::from(io::ErrorKind::ResourceBusy));
        }
        std::fs::remove_dir_all(path)
    }
}
