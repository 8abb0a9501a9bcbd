//! The files a program's code is paged in from: its executable, the ELF interpreter and the
//! shared libraries it needs (`DT_NEEDED`, transitively), found as the dynamic linker finds
//! them under the run's root (`DT_RUNPATH`/`DT_RPATH` with `$ORIGIN`, then the standard
//! directories). Their page-cache evictions are what `pagecache.bpf.c` counts for a run.
//! Libraries a program opens itself (`dlopen`, a JVM's libjvm.so) are not seen.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use object::elf::{FileHeader64, DT_NEEDED, DT_RPATH, DT_RUNPATH};
use object::read::elf::{FileHeader, ProgramHeader};
use object::{Endianness, ReadRef};

/// Where ld.so looks after a library's own run paths (Debian's multiarch directories first).
const STANDARD_DIRS: [&str; 6] = [
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];
/// Enough for any contest language's runtime; a cap on what a hostile ELF can make us read.
const MAX_FILES: usize = 64;
/// Symlinks followed in one path before giving up (as the kernel's ELOOP limit).
const MAX_SYMLINKS: usize = 40;

/// The code files of `executable` (a path as the run sees it, under `root`), as host paths:
/// the executable first. A file that is not there or not ELF is skipped, not an error: the
/// list serves a measurement.
pub fn code_files(root: &Path, executable: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = Vec::new();
    let mut seen = HashSet::new();
    let mut pending: Vec<PathBuf> = resolve(root, executable).into_iter().collect();
    while let Some(file) = pending.pop() {
        if found.len() == MAX_FILES || !seen.insert(file.clone()) {
            continue;
        }
        let Ok(opened) = std::fs::File::open(&file) else {
            continue;
        };
        found.push(file.clone());
        // Only the headers and the dynamic section are read, not the whole (maybe large) file.
        let Some(links) = dynamic_links(&object::ReadCache::new(opened)) else {
            continue;
        };
        let origin = run_view(root, &file).and_then(|path| path.parent().map(Path::to_path_buf));
        pending.extend(links.interpreter.and_then(|path| resolve(root, &path)));
        for name in links.needed {
            let dirs = links
                .run_paths
                .iter()
                .map(|dir| expand_origin(dir, origin.as_deref()))
                .chain(STANDARD_DIRS.iter().map(PathBuf::from));
            let library = if name.contains('/') {
                resolve(root, Path::new(&name))
            } else {
                dirs.into_iter()
                    .find_map(|dir| resolve(root, &dir.join(&name)))
            };
            pending.extend(library);
        }
    }
    found
}

/// The host path of the program a run executes: `command` as the run names it. A path in
/// the run's working directory (`work_dir` in the run's view, `host_work_dir` here) is
/// there; another absolute path is the host's (the sandbox profiles bind the host's system
/// directories at their own paths); a bare name is looked up in `search_path` (PATH).
pub fn program_on_host(
    command: &str,
    work_dir: &Path,
    host_work_dir: &Path,
    search_path: &str,
) -> Option<PathBuf> {
    let command = Path::new(command);
    if let Ok(inside) = command.strip_prefix(work_dir) {
        return Some(host_work_dir.join(inside));
    }
    if command.is_absolute() {
        return Some(command.to_path_buf());
    }
    if command.components().count() > 1 {
        return Some(host_work_dir.join(command));
    }
    search_path
        .split(':')
        .map(|dir| Path::new(dir).join(command))
        .find(|candidate| candidate.is_file())
}

/// What an ELF file asks of the dynamic linker.
#[derive(Debug, Default, PartialEq, Eq)]
struct DynamicLinks {
    interpreter: Option<PathBuf>,
    needed: Vec<String>,
    run_paths: Vec<String>,
}

/// The interpreter, needed libraries and run paths of a 64-bit ELF file; `None` if `data` is
/// not one.
fn dynamic_links<'data, R: ReadRef<'data>>(data: R) -> Option<DynamicLinks> {
    let header = FileHeader64::<Endianness>::parse(data).ok()?;
    let endian = header.endian().ok()?;
    let mut links = DynamicLinks::default();
    for segment in header.program_headers(endian, data).ok()? {
        if let Ok(Some(path)) = segment.interpreter(endian, data) {
            links.interpreter = Some(PathBuf::from(String::from_utf8_lossy(path).into_owned()));
        }
    }
    let sections = header.sections(endian, data).ok()?;
    let table = sections.dynamic_table(endian, data).ok()?;
    for entry in &table {
        let text = || {
            table
                .string(entry)
                .ok()
                .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
        };
        match entry.tag {
            DT_NEEDED => links.needed.extend(text()),
            DT_RUNPATH | DT_RPATH => {
                links.run_paths.extend(
                    text()
                        .iter()
                        .flat_map(|paths| paths.split(':').map(str::to_owned)),
                );
            }
            _ => {}
        }
    }
    Some(links)
}

/// `$ORIGIN` (or `${ORIGIN}`) in a run path is the directory of the file that names it.
fn expand_origin(dir: &str, origin: Option<&Path>) -> PathBuf {
    let origin = origin.map_or_else(String::new, |o| o.display().to_string());
    PathBuf::from(
        dir.replace("${ORIGIN}", &origin)
            .replace("$ORIGIN", &origin),
    )
}

/// The host path of `path` as the run sees it under `root`, its symlinks followed inside
/// `root` (an absolute link target is relative to `root`, as in the run); `None` if missing.
fn resolve(root: &Path, path: &Path) -> Option<PathBuf> {
    let mut view = PathBuf::from("/");
    let mut rest: Vec<PathBuf> = vec![path.to_path_buf()];
    let mut links = 0;
    while let Some(next) = rest.pop() {
        let components: Vec<Component> = next.components().collect();
        for (at, component) in components.iter().enumerate() {
            match component {
                Component::RootDir => view = PathBuf::from("/"),
                Component::CurDir | Component::Prefix(_) => {}
                Component::ParentDir => {
                    view.pop();
                }
                Component::Normal(name) => {
                    let candidate = view.join(name);
                    match std::fs::read_link(host_path(root, &candidate)) {
                        Ok(target) => {
                            links += 1;
                            if links > MAX_SYMLINKS {
                                return None;
                            }
                            // The target first, then what is left of this path after it.
                            rest.push(components[at + 1..].iter().collect());
                            rest.push(target);
                            break;
                        }
                        Err(_) => view = candidate,
                    }
                }
            }
        }
    }
    let host = host_path(root, &view);
    host.is_file().then_some(host)
}

fn host_path(root: &Path, view: &Path) -> PathBuf {
    root.join(view.strip_prefix("/").unwrap_or(view))
}

/// `host` as the run sees it (the inverse of [`host_path`]).
fn run_view(root: &Path, host: &Path) -> Option<PathBuf> {
    host.strip_prefix(root)
        .ok()
        .map(|relative| Path::new("/").join(relative))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> PathBuf {
        crate::repo_path("testdata/elf/root")
    }

    #[test]
    fn a_dynamic_program_brings_its_interpreter_and_libraries_found_under_the_root() {
        let root = tree();
        let files = code_files(&root, Path::new("/usr/bin/hello"));
        let names: Vec<String> = files
            .iter()
            .map(|file| run_view(&root, file).unwrap().display().to_string())
            .collect();
        assert_eq!(names[0], "/usr/bin/hello");
        let rest: HashSet<&str> = names[1..].iter().map(String::as_str).collect();
        assert_eq!(
            rest,
            HashSet::from([
                "/lib/x86_64-linux-gnu/libc.so.6",
                // /lib64/ld-linux-x86-64.so.2, a relative symlink, resolved.
                "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
                "/usr/lib/hello/libgreet.so",
            ]),
        );
    }

    #[test]
    fn symlinks_are_followed_inside_the_root_not_on_the_host() {
        let root = tree();
        // /usr/bin/hi -> /usr/bin/hello (absolute: inside the root).
        assert_eq!(
            resolve(&root, Path::new("/usr/bin/hi")),
            Some(root.join("usr/bin/hello"))
        );
        assert_eq!(resolve(&root, Path::new("/usr/bin/missing")), None);
    }

    #[test]
    fn run_paths_expand_origin_and_split_on_colons() {
        assert_eq!(
            expand_origin("$ORIGIN/../lib/hello", Some(Path::new("/usr/bin"))),
            PathBuf::from("/usr/bin/../lib/hello")
        );
        assert_eq!(
            expand_origin("${ORIGIN}/x", Some(Path::new("/opt"))),
            PathBuf::from("/opt/x")
        );
    }

    #[test]
    fn a_program_is_found_in_the_work_dir_on_the_host_or_in_path() {
        let root = tree();
        let work = Path::new("/work");
        let host_work = Path::new("/tmp/judging/test-1/run");
        let path = format!("/nowhere:{}", root.join("usr/bin").display());
        assert_eq!(
            program_on_host("/work/a.out", work, host_work, &path),
            Some(host_work.join("a.out"))
        );
        assert_eq!(
            program_on_host("./a.out", work, host_work, &path),
            Some(host_work.join("./a.out"))
        );
        assert_eq!(
            program_on_host("/usr/bin/python3", work, host_work, &path),
            Some(PathBuf::from("/usr/bin/python3"))
        );
        assert_eq!(
            program_on_host("hello", work, host_work, &path),
            Some(root.join("usr/bin/hello"))
        );
        assert_eq!(program_on_host("missing", work, host_work, &path), None);
    }

    #[test]
    fn a_file_that_is_not_elf_has_no_links() {
        assert_eq!(dynamic_links(&b"#!/bin/sh\necho hi\n"[..]), None);
    }
}
