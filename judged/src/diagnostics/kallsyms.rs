//! Kernel addresses to names, from `/proc/kallsyms` (`ADDRESS TYPE NAME [MODULE]` per line).
//! Without root the kernel shows every address as zero; such a table is empty and every
//! address stays a hex number.

/// The longest distance from a symbol at which an address is still taken to be inside it:
/// kallsyms has no sizes, and no kernel function is this long, so an address further on
/// (past the end of the kernel image, in a heap object) is not named after the last symbol.
const MAX_OFFSET: u64 = 0x10000;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Symbol {
    address: u64,
    kind: char,
    name: String,
    module: Option<String>,
}

/// The symbol table, sorted by address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Symbols {
    symbols: Vec<Symbol>,
}

impl Symbols {
    pub fn parse(text: &str) -> Symbols {
        let mut symbols: Vec<Symbol> = text
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let address = u64::from_str_radix(fields.next()?, 16).ok()?;
                let kind = fields.next()?.chars().next()?;
                let name = fields.next()?.to_owned();
                let module = fields.next().map(|m| m.trim_matches(['[', ']']).to_owned());
                (address != 0).then_some(Symbol {
                    address,
                    kind,
                    name,
                    module,
                })
            })
            .collect();
        symbols.sort_by_key(|s| s.address);
        Symbols { symbols }
    }

    /// `/proc/kallsyms` of this host; empty when unreadable.
    pub fn read_host() -> Symbols {
        std::fs::read_to_string("/proc/kallsyms")
            .map(|text| Symbols::parse(&text))
            .unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }

    /// The symbol containing `address` and the offset into it.
    fn containing(&self, address: u64) -> Option<(&Symbol, u64)> {
        let index = self.symbols.partition_point(|s| s.address <= address);
        let symbol = self.symbols.get(index.checked_sub(1)?)?;
        let offset = address - symbol.address;
        (offset < MAX_OFFSET).then_some((symbol, offset))
    }

    /// A work function's name (`free_ipc`, `nfsd_work [nfsd]`), else its address in hex.
    pub fn function(&self, address: u64) -> String {
        match self.containing(address) {
            Some((symbol, 0)) => with_module(symbol.name.clone(), symbol),
            Some((symbol, offset)) => with_module(format!("{}+{offset:#x}", symbol.name), symbol),
            None => format!("{address:#x}"),
        }
    }

    /// A stack frame: `name+0xoffset [module]`, else the address in hex.
    pub fn frame(&self, address: u64) -> String {
        match self.containing(address) {
            Some((symbol, offset)) => with_module(format!("{}+{offset:#x}", symbol.name), symbol),
            None => format!("{address:#x}"),
        }
    }

    /// A lock's name when the lock is a kernel global of that name (data symbols are listed
    /// only with CONFIG_KALLSYMS_ALL), else its address in hex: locks inside objects have none.
    pub fn data(&self, address: u64) -> String {
        self.symbols
            .binary_search_by_key(&address, |s| s.address)
            .ok()
            .map(|index| &self.symbols[index])
            .filter(|s| matches!(s.kind, 'd' | 'D' | 'b' | 'B' | 'r' | 'R'))
            .map_or_else(|| format!("{address:#x}"), |s| s.name.clone())
    }

    /// The address of a symbol by name.
    pub fn address_of(&self, name: &str) -> Option<u64> {
        self.symbols
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.address)
    }
}

fn with_module(text: String, symbol: &Symbol) -> String {
    match &symbol.module {
        Some(module) => format!("{text} [{module}]"),
        None => text,
    }
}

/// The function name of a symbolized frame or work function (`css_release_work_fn+0x2a
/// [mod]` → `css_release_work_fn`).
pub fn base_name(text: &str) -> &str {
    text.split(['+', ' ']).next().unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn fixture() -> Symbols {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/ebpf/kallsyms");
        Symbols::parse(&std::fs::read_to_string(path).unwrap())
    }

    #[test]
    fn functions_frames_and_data_are_named() {
        let symbols = fixture();
        let table: Vec<(u64, &str, &str, &str)> = vec![
            // address, as a work function, as a frame, as a lock
            (
                0xffffffff81a74af0,
                "free_ipc",
                "free_ipc+0x0",
                "0xffffffff81a74af0",
            ),
            (
                0xffffffff81449ee4,
                "css_killed_work_fn+0x14",
                "css_killed_work_fn+0x14",
                "0xffffffff81449ee4",
            ),
            (
                0xffffffffc0201010,
                "nfsd_work+0x10 [nfsd]",
                "nfsd_work+0x10 [nfsd]",
                "0xffffffffc0201010",
            ),
            (
                0xffffffff82a1c340,
                "cgroup_mutex",
                "cgroup_mutex+0x0",
                "cgroup_mutex",
            ),
            // before the first symbol, and far past the last one (a heap object)
            (0x1000, "0x1000", "0x1000", "0x1000"),
            (
                0xffff888003a1c000,
                "0xffff888003a1c000",
                "0xffff888003a1c000",
                "0xffff888003a1c000",
            ),
        ];
        for (address, function, frame, data) in table {
            assert_eq!(symbols.function(address), function, "{address:#x}");
            assert_eq!(symbols.frame(address), frame, "{address:#x}");
            assert_eq!(symbols.data(address), data, "{address:#x}");
        }
        assert_eq!(symbols.address_of("free_ipc"), Some(0xffffffff81a74af0));
    }

    #[test]
    fn an_unprivileged_view_is_empty() {
        let zeroed = "0000000000000000 T _stext\n0000000000000000 t free_ipc\n";
        let symbols = Symbols::parse(zeroed);
        assert!(symbols.is_empty());
        assert_eq!(symbols.function(0xffffffff81a74af0), "0xffffffff81a74af0");
    }

    #[test]
    fn base_names_drop_offset_and_module() {
        assert_eq!(
            base_name("css_release_work_fn+0x2a [mod]"),
            "css_release_work_fn"
        );
        assert_eq!(base_name("free_ipc"), "free_ipc");
        assert_eq!(base_name("0xffff"), "0xffff");
    }
}
